"""Text as a reader sees it: one normalising function for every place that looks for contact
details in what people write (the mail door's scrubbing, policy's C4 address detection).

People hide an address from filters in ways a reader still understands: ``ana&#64;mail.example``
(an HTML character reference, shown by a mail client as "@"), ``ana%40mail.example`` (percent
encoding, as in a link), ``ana\\u200b@mail.example`` (a zero-width character nobody sees),
``ana＠mail．example`` (full-width forms), ``ana at mail dot example`` / ``ana [arroba] mail
[punto] example`` (spelled out, in the six languages of the platform). :func:`normalize` undoes
all of these in one pass, in this order:

1. HTML character references (numeric, with or without ``;``; named, with ``;``) and runs of
   percent-encoded UTF-8 bytes are decoded — one level: what a browser or a mail client shows;
2. each character sequence is put in NFKC (compatibility forms: full-width, small, circled,
   ligatures; combining marks composed), and invisible characters are dropped (format
   characters, category Cf: zero-width space/joiners, soft hyphen, bidi controls, BOM, tags;
   and the other default-ignorable ones: variation selectors, combining grapheme joiner, Hangul
   fillers);
3. an address spelled out with words or loose separators (``at``/``arroba``/``chiocciola``/
   ``arobase``/``klammeraffe``/``ät`` or a spaced or bracketed ``@``; ``dot``/``punto``/
   ``point``/``ponto``/``punkt`` or a bracketed ``.``; ending in a known top-level domain) is
   written as ``local@domain.tld``.

The result keeps a map back to the original: :meth:`Normalized.span` turns a span found in the
normalised text into the span of the original text it came from (an ``@`` found where the
original had ``&#64;`` maps to those five characters), so callers report and replace in the text
the sender wrote. Nothing normalised is ever sent on: it is only searched.

Hand-written (the standard library's ``html.unescape``, ``unicodedata`` and the UTF-8 codec do
the decoding; what is ours is keeping the offsets, which no library does).
"""

from __future__ import annotations

import bisect
import codecs
import html
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["AT_WORDS", "DOT_WORDS", "TLDS", "Normalized", "normalize"]

#: How people write "@" when they hide an address, in en, es, fr, it, pt, de.
AT_WORDS: tuple[str, ...] = ("at", "arroba", "chiocciola", "arobase", "arobas", "klammeraffe",
                             "ät")
#: How they write ".": en dot, es/it punto, fr point, pt ponto, de Punkt.
DOT_WORDS: tuple[str, ...] = ("dot", "punto", "point", "ponto", "punkt")
#: Top-level domains a spelled-out address must end in to count as one ("meet at home dot it"
#: is an address, "look at this" is not): the common generic ones, the markets' country codes,
#: and ``example`` (RFC 2606, the documentation domains).
TLDS: tuple[str, ...] = (
    "com", "net", "org", "info", "biz", "email", "online", "shop", "store", "me", "io", "app",
    "es", "fr", "it", "de", "pt", "br", "uk", "co", "eu", "mx", "ar", "cl", "pe", "ch", "at",
    "be", "nl", "lu", "us", "ca", "example",
)

# -- step 1 and 2: characters ------------------------------------------------------------------
# Found with str.find and anchored matches: a regular expression that scans every position costs
# 30-60 ns a character in CPython, which policy's budget (300 µs a decision) cannot pay.

_REFERENCE = re.compile(r"&(?:#[0-9]{1,8};?|#[xX][0-9a-fA-F]{1,7};?|[A-Za-z][A-Za-z0-9]{1,31};)")
_PERCENT = re.compile(r"(?:%[0-9A-Fa-f]{2})+")

#: Default-ignorable characters that are not format characters (Cf): combining grapheme joiner,
#: Hangul fillers, Khmer inherent vowels, Mongolian free variation selectors, variation
#: selectors (Unicode's DerivedCoreProperties, Default_Ignorable_Code_Point).
_IGNORABLE = frozenset(
    [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0, *range(0x180B, 0x1810),
     *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)]
)


_ASCII = bytes(range(128))


def _invisible(c: str) -> bool:
    return unicodedata.category(c) == "Cf" or ord(c) in _IGNORABLE


def _visible(text: str) -> str:
    """``text`` in NFKC without invisible characters."""
    out = unicodedata.normalize("NFKC", text)
    if out.isascii():
        return out
    return "".join(c for c in out if not _invisible(c))


def _positions(text: str, needle: str) -> list[int]:
    found, i = [], text.find(needle)
    while i != -1:
        found.append(i)
        i = text.find(needle, i + 1)
    return found


def _percent(run: str) -> list[tuple[int, int, str]]:
    """A run of ``%XX`` decoded as UTF-8, each character with the ``%XX`` it came from."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    out: list[tuple[int, int, str]] = []
    start = 0
    for i in range(0, len(run), 3):
        chars = decoder.decode(bytes([int(run[i + 1:i + 3], 16)]))
        if chars:
            out.append((start, i + 3, chars))
            start = i + 3
    tail = decoder.decode(b"", final=True)
    if tail or start < len(run):
        out.append((start, len(run), tail))
    return out


@lru_cache(maxsize=4096)
def _reference(ref: str) -> str:
    """What a character reference shows (the same few come back in every HTML mail)."""
    return _visible(html.unescape(ref))


def _encoded(text: str) -> list[tuple[int, int, str]]:
    """Edits decoding the character references and percent-encoded runs of ``text``."""
    edits: list[tuple[int, int, str]] = []
    if "&" in text:
        for i in _positions(text, "&"):
            m = _REFERENCE.match(text, i)
            if m is not None:
                decoded = _reference(m.group(0))
                if decoded != m.group(0):
                    edits.append((i, m.end(), decoded))
    if "%" in text:
        done = 0
        for i in _positions(text, "%"):
            m = _PERCENT.match(text, i) if i >= done else None
            if m is not None:
                edits += [(i + s, i + e, _visible(chars)) for s, e, chars in _percent(m.group(0))]
                done = m.end()
    return edits


def _unusual(text: str) -> list[tuple[int, int, str]]:
    """Edits putting the non-ASCII characters of ``text`` that a reader sees otherwise (NFKC)
    or not at all (invisible) in their visible form, each base character with its marks."""
    if text.isascii():
        return []
    composed = unicodedata.is_normalized("NFKC", text)
    # The distinct non-ASCII characters, cheaply: bytes.translate drops the ASCII in C.
    others = text.encode("utf-8", "surrogatepass").translate(None, _ASCII).decode(
        "utf-8", "surrogatepass")
    odd = [c for c in set(others) if (
        _invisible(c) or unicodedata.normalize("NFKC", c) != c
        or (not composed and unicodedata.combining(c)))]
    if not odd:
        return []
    edits: list[tuple[int, int, str]] = []
    done = 0
    for p in sorted(i for c in odd for i in _positions(text, c)):
        if p < done:
            continue
        start, end = p, p + 1
        while start > done and unicodedata.combining(text[start]):
            start -= 1  # back to the base character of a mark
        while end < len(text) and unicodedata.combining(text[end]):
            end += 1
        piece = text[start:end]
        seen = _visible(piece)
        if seen != piece:
            edits.append((start, end, seen))
        done = end
    return edits


def _merge(*groups: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The edits of every group in order, an edit overlapping an earlier one dropped."""
    merged: list[tuple[int, int, str]] = []
    for edit in sorted(e for g in groups for e in g):
        if not merged or edit[0] >= merged[-1][1]:
            merged.append(edit)
    return merged


# -- step 3: spelled-out addresses -------------------------------------------------------------

_OPEN = r"\s*+[\[\(\{<\"']?\s*+"
_CLOSE = r"\s*+[\]\)\}>\"']?\s*+"
_DOT = (r"(?:" + _OPEN + r"(?<!\w)(?:" + "|".join(DOT_WORDS) + r")(?!\w)" + _CLOSE
        + r"|\s*+[\[\(\{<]\s*+\.\s*+[\]\)\}>]\s*+|[.\u3002])")
_DOT_RE = re.compile(_DOT, re.I)
_DOMAIN_AFTER = re.compile(
    _CLOSE + r"([a-z0-9][\w-]*(?:" + _DOT + r"[a-z0-9][\w-]*)*" + _DOT
    + r"(?:" + "|".join(TLDS) + r"))(?![\w-])",
    re.I,
)
_OPENERS = frozenset(" \t\r\n[({<\"'")
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+-")


def _local_before(text: str, at: int, floor: int) -> int | None:
    """Where the local part of an address ends before the "at" at ``at`` (spaces and one
    opening bracket may stand between), or None when no local part is there."""
    i = at
    while i > floor and text[i - 1] in " \t":
        i -= 1
    if i > floor and text[i - 1] in "[({<\"'":
        i -= 1
    while i > floor and text[i - 1] in " \t":
        i -= 1
    end = i
    while i > max(floor, end - 64) and (text[i - 1] in _LOCAL_CHARS or text[i - 1].isalnum()):
        i -= 1
    while i < end and not text[i].isalnum():
        i += 1  # a local part starts with a letter or digit
    return end if i < end else None


def _is_word(low: str, a: int, b: int) -> bool:
    return (a == 0 or not (low[a - 1].isalnum() or low[a - 1] == "_")) and (
        b == len(low) or not (low[b].isalnum() or low[b] == "_"))


def _at_words(text: str) -> list[tuple[int, int]]:
    """Where the words of :data:`AT_WORDS` stand in ``text`` (whole words, any case)."""
    low = text.lower()
    if len(low) != len(text):  # a character whose lower case is longer ("İ"): keep offsets
        low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return [(i, i + len(w)) for w in AT_WORDS for i in _positions(low, w)
            if _is_word(low, i, i + len(w))]


def _spelled_addresses(text: str, at_words: Sequence[tuple[int, int]] | None = None
                       ) -> list[tuple[int, int, str]]:
    """Edits that write each spelled-out address in ``text`` as ``local@domain.tld``: the "at"
    with its separators becomes "@", each "dot" "."."""
    candidates = list(_at_words(text) if at_words is None else at_words)
    candidates += [(i, i + 1) for i in _positions(text, "@")
                   if (i > 0 and text[i - 1] in _OPENERS) or (i + 1 < len(text)
                                                                and text[i + 1] in _OPENERS)]
    edits: list[tuple[int, int, str]] = []
    done = 0
    for a, b in sorted(candidates):
        if a < done:
            continue
        after = _DOMAIN_AFTER.match(text, b)
        if after is None:
            continue
        local_end = _local_before(text, a, done)
        if local_end is None:
            continue
        found = [(local_end, after.start(1), "@")]
        for dot in _DOT_RE.finditer(text, after.start(1), after.end(1)):
            found.append((dot.start(), dot.end(), "."))
        edits += [(s, e, r) for s, e, r in found if text[s:e] != r]
        done = after.end(1)
    return edits


# -- the map back ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    """One rewriting step: the spans it replaced, in its output and in its input."""

    out_starts: list[int]
    edits: list[tuple[int, int, int, int]]  # (out_start, out_end, in_start, in_end)

    def char(self, i: int) -> tuple[int, int]:
        """The input span that output character ``i`` came from."""
        k = bisect.bisect_right(self.out_starts, i) - 1
        if k < 0:
            return i, i + 1
        o_s, o_e, i_s, i_e = self.edits[k]
        if i < o_e:
            return i_s, i_e
        delta = i_e - o_e
        return i + delta, i + delta + 1

    def point(self, i: int) -> int:
        """The input position of output position ``i`` (for an empty span)."""
        k = bisect.bisect_right(self.out_starts, i) - 1
        if k < 0:
            return i
        o_s, o_e, i_s, i_e = self.edits[k]
        return i_s if i < o_e else i + (i_e - o_e)


def _apply(text: str, edits: list[tuple[int, int, str]]) -> tuple[str, _Layer | None]:
    """``text`` with the (sorted, disjoint) ``edits`` applied, and the layer mapping back."""
    if not edits:
        return text, None
    parts: list[str] = []
    spans: list[tuple[int, int, int, int]] = []
    pos = out = 0
    for start, end, new in edits:
        parts.append(text[pos:start])
        out += start - pos
        parts.append(new)
        spans.append((out, out + len(new), start, end))
        out += len(new)
        pos = end
    parts.append(text[pos:])
    return "".join(parts), _Layer([s[0] for s in spans], spans)


@dataclass(frozen=True)
class Normalized:
    """The normalised text and the way back to the original."""

    original: str
    text: str
    layers: tuple[_Layer, ...] = field(default=(), repr=False)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that ``text[start:end]`` came from."""
        if start >= end:
            for layer in reversed(self.layers):
                start = layer.point(start)
            return start, start
        first, last = start, end - 1
        lo, hi = first, last + 1
        for layer in reversed(self.layers):
            lo = layer.char(first)[0]
            hi = layer.char(last)[1]
            first, last = lo, hi - 1
        return lo, hi


def normalize(text: str, *, at_words: Sequence[tuple[int, int]] | None = None) -> Normalized:
    """``text`` as a reader sees it, for finding addresses (see the module's docstring).

    ``at_words``: where the caller already found the words of :data:`AT_WORDS` in ``text``
    (spans; whole words or not, any case), to save searching again — policy's one-pass hint
    scan has them."""
    layers: list[_Layer] = []
    current, layer = _apply(text, _merge(_encoded(text), _unusual(text)))
    if layer is not None:
        layers.append(layer)
        at_words = None  # the caller's spans were in the text before this step
    elif at_words is not None:
        at_words = [(a, b) for a, b in at_words if _is_word(text, a, b)]
    current, layer = _apply(current, _spelled_addresses(current, at_words))
    if layer is not None:
        layers.append(layer)
    return Normalized(text, current, tuple(layers))
