"""decode_json reads events with orjson where it agrees with ``json``, and with ``json`` where
it would not: the result (object, or the refusal's code) is ``json.loads``'s for any input.
read_json also says when the bytes rule out unstorable text, and is never wrong about it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bsm_shared.contract.events import EventParseError, decode_json, read_json
from bsm_shared.contract.limits import find_unstorable


def reference(raw: bytes) -> tuple[str, str]:
    """What ``json.loads`` makes of ``raw``: ("ok", repr of the object) or ("error", code)."""
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return "error", "malformed_json"
    if not isinstance(obj, dict):
        return "error", "not_an_object"
    return "ok", repr(obj)


def actual(raw: bytes) -> tuple[str, str]:
    try:
        return "ok", repr(decode_json(raw))
    except EventParseError as exc:
        return "error", exc.code


@pytest.mark.parametrize("raw", [
    b'{"n": 123456789012345678901234567890}',  # orjson would read a float
    b'{"n": -9223372036854775809}',
    b'{"n": 18446744073709551615}',
    b'{"x": 1e400}', b'{"x": NaN}', b'{"x": -Infinity}',  # json reads these, orjson refuses
    b'\xef\xbb\xbf{"a": 1}',  # a UTF-8 BOM
    '{"a": 1}'.encode("utf-16"),
    b'{"s": "\\ud800"}',  # a lone surrogate: read, then refused as unstorable by the checks
    b'{"a": 1, "b": 2, "a": 3}',
    b'{"a": "x\ny"}', b'{"a": 1,}', b"[1]", b"", b"\xff",
    b'{"a": ' * 5000 + b"1" + b"}" * 5000,  # too deep for both
])
def test_decode_json_reads_what_json_reads_and_refuses_what_it_refuses(raw: bytes) -> None:
    assert actual(raw) == reference(raw)


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=25,
)


@settings(max_examples=1000, deadline=None)
@given(VALUES, st.booleans(), st.data())
def test_decode_json_agrees_with_json_on_any_event_and_any_corruption_of_it(
    value: object, ascii_only: bool, data: st.DataObject
) -> None:
    raw = json.dumps({"data": value}, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    if data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + data.draw(st.binary(max_size=4)) + raw[at + 1:]
    assert actual(raw) == reference(raw)


TEXT = st.text(st.characters(codec=None, categories=None), max_size=8) | st.sampled_from(
    ["\x00", "a\x00b", "\ud800", "x\udfffy", "\\u0000", "ñ\u2028"])
HOSTILE = st.recursive(
    st.none() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=1000, deadline=None)
@given(HOSTILE, st.booleans())
def test_an_event_read_json_calls_storable_holds_no_nul_and_no_lone_surrogate(
    value: object, ascii_only: bool
) -> None:
    """The walk over every string is skipped only when the bytes show it would find nothing."""
    raw = json.dumps({"data": value}, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    try:
        obj, storable = read_json(raw)
    except EventParseError:
        return
    if storable:
        assert find_unstorable(obj) is None


@pytest.mark.parametrize(("raw", "known", "clean"), [
    ('{"text": "¿Cuándo llega mi pedido? ✓", "n": 3}'.encode(), True, True),  # the usual event
    (b'{"text": "a\\u0000b"}', False, False),
    (b'{"text": "\\ud800"}', False, False),
    (b'{"text": "a\\\\u0000"}', False, True),  # a backslash and "u0000": walked, clean
    (b'{"n": 1234567890123456789012}', False, True),  # read by json: walked
])
def test_the_usual_event_is_known_storable_from_its_bytes(
    raw: bytes, known: bool, clean: bool
) -> None:
    obj, storable = read_json(raw)
    assert storable is known
    assert (find_unstorable(obj) is None) is clean
