"""Addresses in disguise (issue 11, item 4): one normalising function (``bsm_shared.text``) for
the mail door's scrubbing and policy's C4. "name at domain dot example", ``%40``, a zero-width
character before ``@``, a full-width ``＠``, character references — each is found, and what is
reported or replaced is the span the sender wrote."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bsm_alias import mail
from bsm_policy import engine
from bsm_shared.text import normalize
from tests.unit.test_policy_rules import ctx, found, from_seller

ALIAS = "sssssssssssssss1@marketplace.example"
REAL = "ana.lopez@mail.example"

#: The disguises of the issue, and their relatives: (as written, what a reader reads).
DISGUISES = [
    ("ana.lopez at mail dot example", REAL),
    ("ana.lopez [at] mail [dot] example", REAL),
    ("ana.lopez arroba mail punto example", REAL),
    ("ana.lopez%40mail.example", REAL),
    ("ana.lopez%40mail%2Eexample", REAL),
    ("ana.lopez\u200b@mail.example", REAL),
    ("ana.lopez@\u200dmail.example", REAL),
    ("ana.lopez\u00ad@mail.example", REAL),
    ("ana.lopez＠mail.example", REAL),
    ("ａｎａ.ｌｏｐｅｚ＠ｍａｉｌ．ｅｘａｍｐｌｅ", REAL),
    ("ana.lopez&#64;mail.example", REAL),
    ("ana.lopez&#x40;mail&period;example", REAL),
    ("ana.lopez&commat;mail.example", REAL),
]


@pytest.mark.parametrize("written, shown", DISGUISES)
def test_normalize_reads_a_disguised_address_as_the_reader_does(written, shown):
    norm = normalize(f"Escríbeme: {written} gracias")
    assert shown in norm.text


@pytest.mark.parametrize("written, _shown", DISGUISES)
def test_normalize_maps_the_found_address_back_to_what_the_sender_wrote(written, _shown):
    text = f"Escríbeme: {written} gracias"
    norm = normalize(text)
    start = norm.text.index(REAL)
    lo, hi = norm.span(start, start + len(REAL))
    assert text[lo:hi] == written


def test_normalize_leaves_ordinary_text_as_it_is():
    text = "Meet at the depot at 10. Price: 20 % off, café ünd 5 € — see you at home."
    assert normalize(text).text == text


@pytest.mark.parametrize("written, _shown", DISGUISES)
def test_the_door_rewrites_a_disguised_address_to_the_alias(written, _shown):
    body = f"<p>Escríbeme: {written} gracias</p>"
    scrubbed = mail.scrub(body, {REAL: ALIAS}, {})
    assert scrubbed == f"<p>Escríbeme: {ALIAS} gracias</p>"
    assert REAL not in normalize(scrubbed).text


@pytest.mark.parametrize("written, _shown", DISGUISES)
def test_c4_finds_a_disguised_address_and_reports_it_as_written(written, _shown):
    text = f"Para lo demás, escríbeme: {written} y lo vemos."
    decision = engine.decide(from_seller(text=text), ctx())
    assert found(decision, "email_address", text) == [written]


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_normalize_never_fails_and_every_span_maps_inside_the_original(text):
    norm = normalize(text)
    for start in range(0, len(norm.text), 7):
        lo, hi = norm.span(start, min(len(norm.text), start + 5))
        assert 0 <= lo <= hi <= len(text)
