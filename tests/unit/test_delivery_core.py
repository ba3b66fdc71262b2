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


def settle(error, permanent=False, attempts_before=0, max_attempts=3):
    return core.settle(policy_checked(), error=error, permanent=permanent,
                       attempts_before=attempts_before, max_attempts=max_attempts,
                       first_retry_seconds=5.0, now=T0, domain="marketplace.example")


def test_a_mail_the_relay_accepted_settles_as_delivered():
    result = settle(None, attempts_before=2)
    assert result.delivered is not None and result.attempts == 3
    assert (result.retry_at, result.bounce) == (None, None)


def test_a_temporary_failure_is_retried_with_backoff_until_the_attempts_run_out():
    assert settle("smtp_451", attempts_before=0).retry_at == T0 + timedelta(seconds=5)
    last = settle("smtp_451", attempts_before=2, max_attempts=3)
    assert last.retry_at is None and last.bounce.reason_code == "delivery_timeout"
    assert "3 attempts" in last.bounce.explanation


def test_a_permanent_refusal_bounces_at_once_naming_the_reply():
    result = settle("smtp_550", permanent=True)
    assert (result.bounce.stage, result.bounce.rule, result.bounce.reason_code) == (
        "delivery", "D2", "permanent_failure")
    assert "smtp_550" in result.bounce.explanation


def test_a_mail_that_cannot_be_composed_bounces_with_what_to_change():
    result = settle("unsendable_mail:ValueError: bad header", permanent=True)
    assert result.bounce.reason_code == "unsendable_mail"
    assert "ValueError: bad header" in result.bounce.explanation
    assert "attachment" in result.bounce.remedy


def test_a_recipient_erased_meanwhile_bounces_as_erased():
    assert settle("party_erased", permanent=True).bounce.reason_code == "party_erased"


def test_header_values_from_the_event_are_single_lines_in_the_mail():
    pc = policy_checked(order_id="o-1\r\nBcc: x@y.example", subject="Hola\r\nBcc: z@y.example")
    mail = core.compose(pc, sender_name="Ana\r\nX-Evil: 1", domain="marketplace.example", now=T0)
    raw = mail.as_bytes()
    assert b"\nBcc:" not in raw and b"\nX-Evil:" not in raw
    assert mail["X-Bsm-Order"] == "o-1 Bcc: x@y.example"


# -- signed action links in the relayed mail (E2, E4; issue 11) -----------------------------

def test_a_seller_gets_both_action_links_and_a_buyer_the_report_link():
    to_seller = policy_checked(sender_role="buyer", recipient_role="seller")
    to_buyer = policy_checked(sender_role="seller", recipient_role="buyer")
    assert core.link_actions(to_seller) == ("no-response-needed", "report")
    assert core.link_actions(to_buyer) == ("report",)


def test_the_relayed_mail_carries_its_action_links_below_the_signature_in_text_and_html():
    pc = policy_checked(text="¿Cuándo llega?", html="<p>¿Cuándo llega?</p>",
                        recipient_role="seller", recipient_locale="es-ES")
    offered = {"no-response-needed": "https://gw.example/v1/links/AAA.BBB",
               "report": "https://gw.example/v1/links/CCC.DDD?x=1&y=2"}
    mail = core.compose(pc, sender_name="Ana", domain="marketplace.example", now=T0,
                        links=offered)
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    body, _, footer = text.partition("\n-- \n")
    assert body.strip() == "¿Cuándo llega?"
    assert "¿No necesita respuesta? Marca este mensaje: https://gw.example/v1/links/AAA.BBB" \
        in footer
    assert "Denuncia este mensaje al marketplace: https://gw.example/v1/links/CCC.DDD" in footer
    assert '<a href="https://gw.example/v1/links/CCC.DDD?x=1&amp;y=2">' in html
    assert html.startswith("<p>¿Cuándo llega?</p>")


def test_a_mail_without_links_is_the_message_alone_and_unknown_actions_are_left_out():
    pc = policy_checked(text="Hola", html=None)
    plain = core.compose(pc, sender_name="Ana", domain="marketplace.example", now=T0)
    odd = core.compose(pc, sender_name="Ana", domain="marketplace.example", now=T0,
                       links={"delete-everything": "https://evil.example/"})
    for mail in (plain, odd):
        assert mail.get_body(("plain",)).get_content().strip() == "Hola"
    html_only = core.compose(policy_checked(text=None, html="<p>Hola</p>", recipient_locale="xx"),
                             sender_name="Ana", domain="marketplace.example", now=T0,
                             links={"report": "https://gw.example/v1/links/A.B"})
    assert "Report this message to the marketplace" in html_only.get_body(("html",)).get_content()


def test_the_worker_goes_straight_on_only_after_a_full_claim():
    assert core.more_due((200, 0), 200) and core.more_due((3, 200), 200)
    assert not core.more_due((199, 0), 200) and not core.more_due((0, 0), 200)
