"""Canonical JSON has one formula (what signatures cover): the fast path writes exactly the
bytes of the json module's canonical form, for every JSON value."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from bsm_shared.contract.signing import canonical_json


def reference(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def outcome(fn, obj):
    try:
        return fn(obj)
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        return type(exc)


# Text with every code point, lone surrogates, controls and U+2028 included.
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(TEXT, inner, max_size=4), max_leaves=20)


@settings(max_examples=1500)
@given(JSON)
def test_canonical_json_writes_the_bytes_of_the_json_modules_canonical_form(obj):
    assert outcome(canonical_json, obj) == outcome(reference, obj)


def test_the_values_where_orjson_and_json_part_ways_still_get_the_json_bytes():
    for obj in ({"a": 1e-05}, {"n": float("nan")}, {"big": 2**64}, {1: "x"},
                {"k": "\ud800"}, {"é": 1, "e": 2, "Z": [True, None, "\u2028\x7f\x00"]}):
        assert outcome(canonical_json, obj) == outcome(reference, obj), obj


def test_subclasses_and_tuples_are_written_as_json_writes_them():
    class Code(str):
        pass

    class Amount(float):
        pass

    class Attributes(dict):
        pass

    for obj in ({"c": Code("x"), "t": (1, 2)}, {"a": Amount(1e-05)},
                {"d": Attributes(b=1, a=[Amount(2.5e-7)])}, [True, 1, (None, "x")]):
        assert canonical_json(obj) == reference(obj), obj
