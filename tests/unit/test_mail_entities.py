"""Scrubbing (B2): an address written with HTML character references in the HTML part of a
relayed mail (`ana&#64;example.com`, `&#x40;`, `&commat;`) is rewritten like a plain one."""

import html

from hypothesis import given
from hypothesis import strategies as st

from bsm_alias import mail

ALIAS = "sssssssssssssss1@marketplace.example"
local = st.from_regex(r"[a-z][a-z0-9._+-]{0,20}[a-z0-9]", fullmatch=True)
domain = st.from_regex(r"[a-z][a-z0-9-]{1,12}\.(com|es|example)", fullmatch=True)


def entity_forms(c: str) -> list[str]:
    return [c, c.upper(), f"&#{ord(c)};", f"&#x{ord(c):x};", f"&#X{ord(c):X};",
            f"&#00{ord(c)};"] + (["&commat;"] if c == "@" else []) + (
        ["&period;"] if c == "." else [])


@given(local=local, domain=domain, data=st.data(),
       around=st.sampled_from(["<p>{}</p>", '<a href="mailto:{0}">{0}</a>', "Ana &lt;{}&gt;",
                               "<br>{}<br>"]))
def test_an_address_in_html_character_references_is_rewritten_to_the_alias(
    local, domain, data, around
):
    real = f"{local}@{domain}"
    written = "".join(data.draw(st.sampled_from(entity_forms(c))) for c in real)
    body = around.format(written)
    scrubbed = mail.scrub(body, {real: ALIAS}, {})
    # What a mail client shows (entities resolved) carries the alias, never the address.
    shown = html.unescape(scrubbed).lower()
    assert real not in shown and ALIAS in shown


def test_the_three_spellings_of_the_issue_are_rewritten():
    addresses = {"ana@example.com": ALIAS}
    for written in ("ana&#64;example.com", "ana&#x40;example.com", "ana&commat;example.com"):
        assert mail.scrub(f"<p>Escríbeme: {written}</p>", addresses, {}) == (
            f"<p>Escríbeme: {ALIAS}</p>")


def test_the_real_name_before_an_entity_written_address_becomes_the_public_name():
    out = mail.scrub("Ana García &lt;ana&#64;example.com&gt;", {"ana@example.com": ALIAS},
                     {"Ana García": "Muebles Sol"})
    assert out == f"Muebles Sol &lt;{ALIAS}&gt;"


def test_other_text_is_left_alone():
    body = "<p>Precio: 10&euro; &amp; env&iacute;o gratis; &#64; la vista</p>"
    assert mail.scrub(body, {"ana@example.com": ALIAS}, {}) == body
