import os
from datetime import UTC, datetime, timedelta

import pytest

from bsm_shared.runtime.links import ActionToken, LinkError, make_token, read_token

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_a_link_token_round_trips_and_refuses_forgery_and_expiry():
    key = os.urandom(32)
    token = ActionToken("report", "m-1", "b-1", NOW + timedelta(days=30))
    text = make_token(key, token)
    assert read_token(key, text, now=NOW) == ActionToken(
        "report", "m-1", "b-1", datetime.fromtimestamp(int(token.expires_at.timestamp()), UTC))
    with pytest.raises(LinkError, match="not issued"):
        read_token(os.urandom(32), text, now=NOW)
    with pytest.raises(LinkError, match="expired"):
        read_token(key, text, now=NOW + timedelta(days=31))
    with pytest.raises(LinkError, match="malformed"):
        read_token(key, "garbage", now=NOW)


# -- one spelling per token (issue 11) ---------------------------------------------------------

KEY = b"k" * 32


def genuine(expires_at: datetime = NOW + timedelta(days=30)) -> str:
    return make_token(KEY, ActionToken("report", "m-1", "b-1", expires_at))


def forge_payload(payload: bytes) -> str:
    """A token over any payload, with the real key (what only a bug of ours could issue)."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(payload)}.{b64(hmac.new(KEY, payload, hashlib.sha256).digest())}"


def respellings(token: str) -> list[str]:
    """Other spellings a lenient base64 decoder reads as the same bytes."""
    payload, mac = token.split(".")
    std_mac = mac.replace("-", "+").replace("_", "/")
    out = [f"{payload}==.{mac}", f"{payload}.{mac}==", f"{payload}.{mac}=",
           f"{payload}.{mac}====", f" {payload}.{mac}", f"{payload}.{mac}\n",
           f"{payload}.{mac}.", f"{payload}..{mac}"]
    if std_mac != mac:
        out.append(f"{payload}.{std_mac}")
    # The last character of an unpadded quantum carries spare bits: flipping them decodes alike.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(mac[-1])
    out += [f"{payload}.{mac[:-1]}{alphabet[last ^ bit]}" for bit in (1, 2)]
    return out


def test_only_the_canonical_spelling_of_a_token_verifies():
    token = genuine()
    assert read_token(KEY, token, now=NOW).message_id == "m-1"
    tried = respellings(token)
    # A mac containing '-' or '_' gives the standard-alphabet case too; make sure it is tried.
    standard = next(t for t in (genuine(NOW + timedelta(days=d)) for d in range(1, 200))
                    if "-" in t.split(".")[1] or "_" in t.split(".")[1])
    payload, mac = standard.split(".")
    tried.append(f"{payload}.{mac.replace('-', '+').replace('_', '/')}")
    for spelling in tried:
        with pytest.raises(LinkError, match="malformed"):
            read_token(KEY, spelling, now=NOW)


def test_an_absurd_or_odd_expiry_is_a_malformed_link_not_a_crash():
    for expires in (b"99999999999999999999", b"-5", b"+5", b"1_000", b"0005", b" 5", b"\xd9\xa5",
                    b"1e9", b""):
        with pytest.raises(LinkError, match="malformed"):
            read_token(KEY, forge_payload(b"report|m-1|b-1|" + expires), now=NOW)
    for payload in (b"report|m-1|b-1", b"report|m-1|b-1|5|x", b"delete|m-1|b-1|9999999999",
                    b"report||b-1|9999999999", b"\xff|m|b|9999999999"):
        with pytest.raises(LinkError, match="malformed"):
            read_token(KEY, forge_payload(payload), now=NOW)
    with pytest.raises(ValueError):
        genuine(datetime(1969, 12, 31, tzinfo=UTC))  # before 1970: no expiry of ours
    with pytest.raises(LinkError, match="malformed"):
        read_token(KEY, "a" * 5000 + "." + "b", now=NOW)


def test_a_link_url_points_at_the_gateways_confirming_page():
    from bsm_shared.runtime.links import action_url

    url = action_url("https://gw.example/", KEY, ActionToken("report", "m-1", "b-1",
                                                             NOW + timedelta(days=1)))
    prefix = "https://gw.example/v1/links/"
    assert url.startswith(prefix)
    assert read_token(KEY, url.removeprefix(prefix), now=NOW).action == "report"


def test_an_issuer_makes_links_that_the_gateway_reads_and_none_without_key_or_address():
    import base64

    from bsm_shared.runtime.links import LinkIssuer, LinkSettings

    b64 = base64.b64encode(KEY).decode()
    assert LinkIssuer.from_settings(LinkSettings(link_key=None, link_base_url="https://g")) is None
    assert LinkIssuer.from_settings(LinkSettings(link_key=b64, link_base_url=None)) is None
    issuer = LinkIssuer.from_settings(LinkSettings(link_key=b64, link_base_url="https://g/",
                                                   link_valid_days=2))
    assert issuer is not None
    urls = issuer.urls("m-1", "s-1", ("no-response-needed", "report"), now=NOW)
    assert set(urls) == {"no-response-needed", "report"}
    for action, url in urls.items():
        token = read_token(KEY, url.removeprefix("https://g/v1/links/"), now=NOW)
        assert (token.action, token.message_id, token.party_id) == (action, "m-1", "s-1")
        assert token.expires_at == NOW + timedelta(days=2)
    assert issuer.urls("m|1", "s-1", ("report",), now=NOW) == {}


# -- a quoted link does not travel to the other party -------------------------------------------


def test_a_reply_quoting_the_mail_loses_the_recipients_action_links():
    from bsm_shared.runtime.links import LINK_REMOVED, action_url, strip_action_links

    url = action_url("https://messages.shop.example", KEY,
                     ActionToken("no-response-needed", "m-1", "s-1", NOW + timedelta(days=30)))
    text = f"Thanks!\n\n> Report this message to the marketplace: {url}\n> bye"
    html = f'<p>Thanks!</p><blockquote><a href="{url}">Report</a></blockquote>'
    assert strip_action_links(text) == (
        f"Thanks!\n\n> Report this message to the marketplace: {LINK_REMOVED}\n> bye")
    assert url not in strip_action_links(html) and "/v1/links/" not in strip_action_links(html)
    # Anything else is left as it is.
    other = "See https://shop.example/v1/orders/1 and https://x.example/v1/links/ alone."
    assert strip_action_links(other) == other


def test_the_door_strips_action_links_from_what_a_mail_carries():
    from bsm_alias import mail
    from bsm_shared.runtime.links import action_url

    url = action_url("http://127.0.0.1:18080", KEY,
                     ActionToken("report", "m-1", "b-1", NOW + timedelta(days=30)))
    parsed = mail.parse(
        ("From: a@shop.example\r\nTo: x@marketplace.example\r\nSubject: Re: hi\r\n"
         f"Content-Type: text/plain\r\n\r\nSure.\r\n\r\n> Report: {url}\r\n").encode())
    scrubbed = mail.scrub_mail(parsed, {}, {})
    assert "/v1/links/" not in scrubbed.text and "Sure." in scrubbed.text
