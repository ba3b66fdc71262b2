import math
import re

from bsm_alias import core
from bsm_alias.store import ALIAS_ALPHABET, ALIAS_LENGTH, random_alias_local
from bsm_shared.contract.limits import MAX_ATTACHMENTS, MAX_BODY_BYTES, MAX_EVENT_BYTES
from tests.factories import submitted

BUYER = core.Party("buyer-1", "buyer", "Ana B.", "es-ES")
SELLER = core.Party("seller-1", "seller", "Muebles Sol", "es-ES",
                    sealed_name="pii:v1:seller-1:c2VhbGVk")
OTHER_SELLER = core.Party("seller-2", "seller", "Lámparas Luna", "es-ES")
REL = core.Relationship("r-1", "buyer-1", "seller-1", "b" * 16, "s" * 16)


def test_an_erased_party_can_neither_send_nor_receive():
    erased = core.Party("buyer-1", "buyer", "", "es-ES", erased=True)
    for sender, recipient in ((erased, SELLER), (SELLER, erased)):
        stop = core.check_parties(
            submitted(sender={"party_id": sender.party_id}, recipient={"party_id": recipient.party_id}),
            sender, recipient)
        assert stop is not None and stop.reason_code == "party_erased"
        assert "erased" in stop.explanation and stop.remedy


def test_aliases_are_16_lowercase_characters_with_at_least_75_bits_of_randomness():
    aliases = {random_alias_local() for _ in range(2000)}
    assert len(aliases) == 2000
    assert all(re.fullmatch(r"[a-z0-9]{16}", a) for a in aliases)
    assert ALIAS_LENGTH * math.log2(len(ALIAS_ALPHABET)) >= 75


def test_only_well_formed_aliases_at_our_domain_are_recognised():
    assert core.alias_local_part("K2J4H5G6F7D8S9A0@Marketplace.Example", "marketplace.example") == (
        "k2j4h5g6f7d8s9a0"
    )
    assert core.alias_local_part("k2j4h5g6f7d8s9a0@gmail.com", "marketplace.example") is None
    assert core.alias_local_part("ana@marketplace.example", "marketplace.example") is None


def test_each_side_of_a_relationship_is_shown_its_partners_alias():
    assert REL.alias_of("buyer-1", "m.example") == "b" * 16 + "@m.example"
    assert REL.alias_of("seller-1", "m.example") == "s" * 16 + "@m.example"


def test_a_seller_writing_to_another_seller_is_stopped_under_rule_c9():
    stop = core.check_parties(submitted(), SELLER, OTHER_SELLER)
    assert stop is not None and (stop.rule, stop.reason_code) == ("C9", "seller_to_seller")
    assert stop.remedy


def test_unknown_parties_and_self_addressed_messages_are_stopped_with_a_remedy():
    for sender, recipient, code in [
        (None, SELLER, "unknown_sender"),
        (BUYER, None, "unknown_recipient"),
        (BUYER, BUYER, "self_addressed"),
    ]:
        stop = core.check_parties(submitted(), sender, recipient)
        assert stop is not None and stop.reason_code == code and stop.remedy


def test_a_buyer_writing_to_a_seller_passes():
    assert core.check_parties(submitted(), BUYER, SELLER) is None


def test_a_new_message_starts_a_conversation_started_by_its_sender():
    assert core.decide_conversation(
        submitted(), REL, None, sender_role="seller", new_conversation_id="c-new"
    ) == ("c-new", "seller")


def test_a_reply_joins_the_conversation_of_the_message_it_answers():
    parent = core.PriorMessage("m-0", "c-0", "r-1", "buyer")
    assert core.decide_conversation(
        submitted(in_reply_to="m-0"), REL, parent, sender_role="seller", new_conversation_id="x"
    ) == ("c-0", "buyer")


def test_a_reply_to_an_unknown_message_or_another_relationship_is_stopped():
    unknown = core.decide_conversation(
        submitted(in_reply_to="m-9"), REL, None, sender_role="seller", new_conversation_id="x"
    )
    assert isinstance(unknown, core.Stop) and unknown.reason_code == "unknown_reply_target"
    foreign = core.PriorMessage("m-0", "c-0", "r-other", "buyer")
    other = core.decide_conversation(
        submitted(in_reply_to="m-0"), REL, foreign, sender_role="seller", new_conversation_id="x"
    )
    assert isinstance(other, core.Stop) and other.reason_code == "reply_outside_relationship"


def test_addressed_fields_carry_aliases_and_the_sealed_business_name_never_plaintext():
    fields = core.addressed_fields(
        submitted(sender={"party_id": "seller-1"}, recipient={"party_id": "buyer-1"}),
        sender=SELLER, recipient=BUYER, relationship=REL, conversation_id="c-1",
        started_by="seller", mail_domain="marketplace.example",
    )
    assert fields.sender_alias == "s" * 16 + "@marketplace.example"
    assert fields.recipient_alias == "b" * 16 + "@marketplace.example"
    assert fields.sender_display_name == "pii:v1:seller-1:c2VhbGVk"
    assert "Muebles" not in fields.model_dump_json()


# -- what a message may carry (issue 10: an outside producer's message too large to travel) ----


def _refs(n: int) -> list[dict]:
    return [{"sha256": f"{i:064x}", "size": 10, "content_type": "application/pdf",
             "filename": f"f{i}.pdf"} for i in range(n)]


def test_a_body_over_max_body_bytes_is_stopped_as_message_too_large_naming_the_limit():
    stop = core.check_size(submitted(text="a" * (MAX_BODY_BYTES - 9), html="<p>" + "b" * 10))
    assert stop is not None and (stop.reason_code, stop.rule) == ("message_too_large", "C3")
    assert f"{MAX_BODY_BYTES + 4:,}" in stop.explanation
    assert f"{MAX_BODY_BYTES:,}" in stop.explanation
    assert "attachment" in stop.remedy


def test_more_attachments_than_max_attachments_are_stopped_like_policy_under_c3():
    stop = core.check_size(submitted(attachments=_refs(MAX_ATTACHMENTS + 1)))
    assert stop is not None and (stop.reason_code, stop.rule) == ("too_many_attachments", "C3")
    assert f"{MAX_ATTACHMENTS + 1}" in stop.explanation and stop.remedy


def test_a_body_counts_as_json_spells_it():
    stop = core.check_size(submitted(text="\x01" * (MAX_BODY_BYTES // 6 + 1)))
    assert stop is not None and stop.reason_code == "message_too_large"


def test_a_message_at_the_limits_passes():
    assert core.check_size(submitted(text="é" * (MAX_BODY_BYTES // 2),
                                     attachments=_refs(MAX_ATTACHMENTS))) is None


def test_a_message_too_large_to_carry_as_an_event_is_stopped_naming_the_event_limit():
    stop = core.too_large_to_carry(1_234_567)
    assert (stop.reason_code, stop.rule) == ("message_too_large", "C3")
    assert "1,234,567" in stop.explanation and f"{MAX_EVENT_BYTES:,}" in stop.explanation


def test_an_unknown_reply_target_is_quoted_short_in_the_explanation():
    stop = core.decide_conversation(submitted(in_reply_to="x" * 128), REL, None,
                                    sender_role="seller", new_conversation_id="c")
    assert isinstance(stop, core.Stop) and len(stop.explanation) < 200


def test_every_stop_of_the_alias_stage_names_its_rule_explains_and_says_what_to_do():
    """X1 (C11): a Bounced from every stage carries the rule, the code, an explanation and a
    remedy — the buyer writing to a buyer and the erased party included."""
    other_buyer = core.Party("buyer-2", "buyer", "Luis", "es-ES")
    erased = core.Party("buyer-3", "buyer", "", "es-ES", erased=True)
    stops = [
        core.check_parties(submitted(), None, SELLER),
        core.check_parties(submitted(), BUYER, None),
        core.check_parties(submitted(), BUYER, BUYER),
        core.check_parties(submitted(), SELLER, OTHER_SELLER),
        core.check_parties(submitted(), BUYER, other_buyer),
        core.check_parties(submitted(), erased, SELLER),
    ]
    for stop in stops:
        assert isinstance(stop, core.Stop)
        assert re.fullmatch(r"[A-H][0-9]{1,2}", stop.rule), stop
        assert stop.reason_code and stop.explanation and stop.remedy
    assert [s.rule for s in stops] == ["A4", "A3", "A1", "C9", "A1", "A3"]
