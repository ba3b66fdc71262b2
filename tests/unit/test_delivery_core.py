from datetime import timedelta

from bsm_delivery import core
from bsm_shared.contract.payloads import Violation
from tests.factories import T0, policy_checked


def test_the_relayed_mail_shows_the_business_name_and_alias_and_threads_replies():
    pc = policy_checked(sender_display_name="pii:v1:s1:c2VhbGVk", in_reply_to="m-0")
    mail = core.compose(pc, sender_name="Muebles Sol", domain="marketplace.example", now=T0)
    assert mail["From"] == f'Muebles Sol <{pc.sender_alias}>'
    assert mail["To"] == pc.recipient_alias
    assert mail["Message-ID"] == f"<{pc.message_id}@marketplace.example>"
    assert mail["In-Reply-To"] == "<m-0@marketplace.example>"


def test_the_relayed_mail_carries_the_attachments_as_sent_beside_the_text():
    from bsm_shared.contract.payloads import AttachmentRef

    pdf = b"%PDF-1.4 factura"
    ref = AttachmentRef(sha256="a" * 64, size=len(pdf), filename="factura.pdf",
                        content_type="application/pdf")
    pc = policy_checked(text="Aquí tiene la factura.", attachments=[ref])
    mail = core.compose(pc, sender_name="Muebles Sol", domain="marketplace.example", now=T0,
                        files=[(ref, pdf)])
    [part] = list(mail.iter_attachments())
    assert mail.get_content_type() == "multipart/mixed"
    assert (part.get_filename(), part.get_content_type(), part.get_content()) == (
        "factura.pdf", "application/pdf", pdf)
    assert mail.get_body(("plain",)).get_content().strip() == "Aquí tiene la factura."


def test_a_rejection_bounces_with_every_violation_and_what_to_do():
    violations = [
        Violation(rule="C1", code="unknown_order", detail="Order unknown.", remedy="Check it."),
        Violation(rule="C1", code="contact_reason_required", detail="Needs a reason.",
                  remedy="Choose one."),
    ]
    bounce = core.rejection(policy_checked(verdict="rejected", violations=violations), now=T0)
    assert (bounce.stage, bounce.reason_code, bounce.rule) == ("policy", "unknown_order", "C1")
    assert bounce.violations == violations
    assert "Order unknown." in bounce.explanation and "Needs a reason." in bounce.explanation
    assert "Choose one." in bounce.remedy


def test_only_5xx_replies_are_permanent():
    assert core.is_permanent(550) and core.is_permanent(554)
    assert not core.is_permanent(451) and not core.is_permanent(None)


def test_retries_back_off_exponentially_up_to_an_hour():
    assert core.next_attempt(T0, 1, 5) == T0 + timedelta(seconds=5)
    assert core.next_attempt(T0, 3, 5) == T0 + timedelta(seconds=20)
    assert core.next_attempt(T0, 30, 5) == T0 + timedelta(hours=1)


def test_delivered_names_both_channels_and_the_relayed_message_id():
    pc = policy_checked()
    d = core.delivered(pc, now=T0, domain="marketplace.example")
    assert d.channels == ["mailbox", "email"]
    assert d.email_message_id == f"<{pc.message_id}@marketplace.example>"
    assert d.submitted_at == pc.submitted_at
