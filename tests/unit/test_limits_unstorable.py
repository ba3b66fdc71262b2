"""What no stage can store (``bsm_shared.contract.limits``): U+0000 and lone surrogates,
found the same way by the fast check (strict UTF-8 in C) as by their definition, at the first
offending character, in any string or key of an event."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from bsm_shared.contract.limits import find_unstorable, unstorable

DEFINITION = re.compile("[\x00\ud800-\udfff]")

# Text with some NULs and surrogates among ordinary, accented and astral characters.
texts = st.text(alphabet=st.one_of(
    st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF),
    st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "é", "😀", "a"])))


@given(texts)
def test_unstorable_finds_the_first_nul_or_lone_surrogate_as_the_definition_says(value):
    found = DEFINITION.search(value)
    reason = unstorable(value)
    if found is None:
        assert reason is None
    elif "\x00" in value:
        assert reason == f"U+0000 (NUL) at character {value.index(chr(0))}"
    else:
        assert reason == (f"a lone surrogate (U+{ord(found.group(0)):04X}) at character "
                          f"{found.start()}")


def test_an_event_with_clean_text_passes_and_a_bad_key_or_value_is_named_by_its_path():
    clean = {"data": {"text": "¿Cuándo llega? 😀", "attachments": [{"filename": "f.pdf"}]}}
    assert find_unstorable(clean) is None
    assert find_unstorable({"data": {"attachments": [{"filename": "a\x00b"}]}}) == (
        "data.attachments.0.filename", "U+0000 (NUL) at character 1")
    assert find_unstorable({"data": {"x\udc00": 1}}) == (
        "data.x\udc00", "a lone surrogate (U+DC00) at character 1")
