"""Content detectors (C4, C5 and the content side of C3), pure and cheap.

Each detector returns :class:`Finding` s: a stable code and where it is (field + character
offsets, or an HTML element). The engine turns findings into explained violations.

Cost matters (the whole decision has a budget of 300 µs median): the expensive libraries run
only where a cheap pre-filter says they may find something — phonenumbers only on runs of
digits long enough to be a phone number, the emoji library only when a character from the
emoji blocks is present, the HTML parser only when there is HTML.

HTML is scanned as *visible text with the tags blanked out* (every tag replaced by spaces of the
same length), so offsets found in it are offsets into the HTML source the sender wrote.
"""

from __future__ import annotations

import base64
import bisect
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
import html as html_lib

import ahocorasick
import emoji
import nh3
import phonenumbers

from bsm_shared import attachments as file_types
from bsm_shared.text import AT_WORDS, normalize

# ---------------------------------------------------------------------------------------------
# Findings
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    code: str
    field: str  # "subject" | "text" | "html" | "attachments" | "message"
    start: int | None = None
    end: int | None = None
    element: str | None = None
    params: dict[str, str] = field(default_factory=dict, compare=False)


# ---------------------------------------------------------------------------------------------
# HTML allow-list (C5) — documented as a table in docs/policy.md; keep both in step.
# ---------------------------------------------------------------------------------------------

ALLOWED_TAGS: frozenset[str] = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "div", "em", "font", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "q", "s", "small", "span",
    "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
})
GENERIC_ATTRIBUTES: frozenset[str] = frozenset({"style", "title", "lang", "dir", "align"})
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "*": set(GENERIC_ATTRIBUTES),
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "font": {"color", "face", "size"},
    "td": {"colspan", "rowspan", "valign", "width"},
    "th": {"colspan", "rowspan", "valign", "width"},
    "table": {"border", "cellpadding", "cellspacing", "width"},
    "ol": {"start", "type"},
    "blockquote": {"cite"},
}
ALLOWED_CSS: frozenset[str] = frozenset({
    "color", "background-color", "font-family", "font-size", "font-style", "font-weight",
    "text-align", "text-decoration", "line-height", "margin", "margin-top", "margin-bottom",
    "margin-left", "margin-right", "padding", "padding-top", "padding-bottom", "padding-left",
    "padding-right", "border", "border-collapse", "width", "height", "vertical-align",
    "list-style-type",
})
#: Schemes a link (``a href``) and a quotation's source (``blockquote cite``) may use: a web
#: page, with a host (``https://…``, ``http://…``; an ``http`` link is then refused by C4).
LINK_SCHEMES: frozenset[str] = frozenset({"https", "http"})
#: Schemes an image (``img src``) may use: a web image, an image sent with the mail (``cid:``)
#: or one in the HTML (``data:`` of :data:`INLINE_IMAGE_TYPES`).
IMAGE_SCHEMES: frozenset[str] = LINK_SCHEMES | {"cid", "data"}
#: Every scheme nh3 lets through; each URL-bearing attribute is then held to its own list
#: (:data:`URL_ATTRIBUTES`), and any other attribute that could hold a URL is not allowed.
URL_SCHEMES: frozenset[str] = IMAGE_SCHEMES
#: The attributes on the allow-list that hold a URL, and the schemes each may use.
URL_ATTRIBUTES: dict[tuple[str, str], frozenset[str]] = {
    ("a", "href"): LINK_SCHEMES,
    ("img", "src"): IMAGE_SCHEMES,
    ("blockquote", "cite"): LINK_SCHEMES,
}
#: Raster image types an inline ``data:`` image may have: the images of B4's list, as for an
#: attached or ``cid:`` image (an SVG image is a document that can carry script and links).
INLINE_IMAGE_TYPES: frozenset[str] = file_types.IMAGE_MIME_TYPES
#: Elements whose mere presence rejects the message (active content or forms: removing them
#: silently would change what the sender meant to send).
FORBIDDEN_ELEMENTS: frozenset[str] = frozenset({
    "script", "iframe", "object", "embed", "form", "input", "button", "textarea", "select",
    "applet", "frame", "frameset", "meta", "link", "base", "svg", "math", "video", "audio",
})


def sanitize_html(html: str | None) -> str | None:
    """HTML through the allow-list (C5). Idempotent: sanitising twice changes nothing."""
    if html is None:
        return None
    once = _clean(html)
    # Unwrapping a tag that is not allowed can leave a tree HTML cannot express (a <p> inside a
    # <p>); it reads back differently. A second pass settles it, so the result is a fixed point.
    return _clean(once) if _UNWRAPPED.search(html) else once


#: A start tag that is not on the allow-list (its removal may need the second pass).
_UNWRAPPED = re.compile(
    r"<(?!(?:" + "|".join(sorted(ALLOWED_TAGS, key=len, reverse=True)) + r")[\s/>])[a-zA-Z]"
)


_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
_DATA_IMAGE = re.compile(r"data:([a-z]+/[a-z0-9.+-]+)(?:;[a-z0-9=._-]+)*[,;]", re.I)
#: A CSS value that is only keywords, numbers, lengths, percentages, colours and quoted font
#: names, or the colour functions: nothing that loads (``url(``), runs (``expression(``,
#: ``behavior``), escapes (``\\``) or comments (``/*``).
_CSS_VALUE = re.compile(
    r"(?:(?:rgba?|hsla?)\(\s*+[\d\s.,%/]*\)|[^\W_]|[\s#%.,'\"!+_-])*+", re.I)


def allowed_url(value: str, schemes: frozenset[str]) -> bool:
    """Whether a URL attribute's value is an absolute URL of one of ``schemes`` (the value as
    the HTML parser gives it: character references decoded). Relative URLs are refused: in a
    mail they resolve against whatever page shows it."""
    url = value.strip(" \t\n\f\r")
    if not url or any(c.isspace() or not c.isprintable() for c in url):
        return False  # a browser drops tabs and newlines inside a URL: "java\tscript:"
    m = _SCHEME.match(url)
    if m is None or m.group(1).lower() not in schemes:
        return False
    scheme, rest = m.group(1).lower(), url[m.end():]
    if scheme in ("http", "https"):
        return rest.startswith("//") and len(rest) > 2 and rest[2] not in "/\\"
    if scheme == "data":
        typed = _DATA_IMAGE.match(url)
        return typed is not None and typed.group(1).lower() in INLINE_IMAGE_TYPES
    return bool(rest)  # cid:<content id>


@lru_cache(maxsize=4096)
def allowed_style(value: str) -> str | None:
    """The declarations of a ``style`` attribute that are on the allow-list (:data:`ALLOWED_CSS`)
    with a plain value (:data:`_CSS_VALUE`), or None when none is. Cached: nh3 asks for every
    attribute, and a mail's cells and paragraphs repeat the same few styles (it was half of a
    10 KB HTML decision)."""
    kept = []
    for declaration in value.split(";"):
        prop, colon, val = declaration.partition(":")
        if (colon and prop.strip().lower() in ALLOWED_CSS and val.strip()
                and _CSS_VALUE.fullmatch(val.strip())):
            kept.append(f"{prop.strip().lower()}:{val.strip()}")
    return ";".join(kept) or None


#: Attributes whose value is text people read (anything goes, it is escaped); every other
#: attribute on the allow-list takes a plain value: a number, a size, a colour, a keyword, a
#: font name (:data:`_PLAIN_VALUE`).
TEXT_ATTRIBUTES: frozenset[str] = frozenset({"title", "alt"})
_PLAIN_VALUE = re.compile(r"[\w\s#%.,'\"+-]*+")


@lru_cache(maxsize=8192)
def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    """nh3's last word on each attribute it keeps (None drops it). Pure, and called for every
    attribute of every element: cached (mails repeat their attributes)."""
    schemes = URL_ATTRIBUTES.get((tag, attribute))
    if schemes is not None:
        return value if allowed_url(value, schemes) else None
    if attribute == "style":
        return allowed_style(value)
    if attribute in TEXT_ATTRIBUTES or attribute == "rel" or _PLAIN_VALUE.fullmatch(value):
        return value
    return None


def _clean(html: str) -> str:
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_attribute_filter,
        url_schemes=set(URL_SCHEMES),
        filter_style_properties=set(ALLOWED_CSS),
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


# ---------------------------------------------------------------------------------------------
# HTML structure: elements the content rules judge (images, links, forbidden elements)
# ---------------------------------------------------------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    start: int  # offset of the start tag in the source
    end: int  # offset after the start tag
    inside_link: bool = False
    link_text: str = ""


#: Only the elements the rules look at are scanned (one regular-expression pass; a full HTML
#: parser costs ~7 ms on 10 KB, far over the decision budget). nh3 does the real parsing when
#: it sanitises.
_ELEMENT = re.compile(
    r"<(/?)(a|img|" + "|".join(sorted({
        "script", "iframe", "object", "embed", "form", "input", "button", "textarea", "select",
        "applet", "frame", "frameset", "meta", "link", "base", "svg", "math", "video", "audio",
    }, key=len, reverse=True)) + r")(?=[\s/>])([^>]*)>",
    re.I,
)
_ATTR = re.compile(r"""([a-zA-Z_:][-\w:.]*)\s*(?:=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?""")


def _attrs(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in _ATTR.finditer(raw):
        value = m.group(2) or ""
        if value[:1] in {"'", '"'}:
            value = value[1:-1]
        out[m.group(1).lower()] = html_lib.unescape(value)
    return out


def scan_html(html: str) -> list[Element]:
    elements: list[Element] = []
    links: list[Element] = []
    for m in _ELEMENT.finditer(html):
        closing, tag = m.group(1), m.group(2).lower()
        if closing:
            if tag == "a" and links:
                a = links.pop()
                a.link_text = html[a.end:m.start()]
            continue
        el = Element(tag, _attrs(m.group(3)), m.start(), m.end(), inside_link=bool(links))
        elements.append(el)
        if tag == "a" and not m.group(3).rstrip().endswith("/"):
            links.append(el)
    for a in links:  # never closed
        a.link_text = html[a.end:a.end + 200]
    return elements


def inside_tag(html: str, pos: int) -> bool:
    """Whether ``pos`` lies inside a tag (an attribute) rather than in the visible text."""
    return html.rfind("<", 0, pos) > html.rfind(">", 0, pos)


_TAG = re.compile(r"<!--.*?-->|<(script|style)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)
_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-f]+|[a-z]+);", re.I)


def visible_text(html: str) -> str:
    """The HTML with every tag, comment and script blanked to spaces: same length, so an
    offset found in it is an offset into the source."""
    blank = _TAG.sub(lambda m: " " * len(m.group(0)), html)
    return _ENTITY.sub(lambda m: " " * len(m.group(0)), blank)


_PX = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:px)?\s*$")


def _style(el: Element) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in el.attrs.get("style", "").split(";"):
        if ":" in part:
            k, _, v = part.partition(":")
            out[k.strip().lower()] = v.strip().lower()
    return out


def _size(value: str | None) -> float | None:
    if value is None:
        return None
    m = _PX.match(value)
    return float(m.group(1)) if m else None


def describe(el: Element, source: str) -> str:
    return source[el.start:el.end][:200]


def html_findings(html: str, *, mail_domain: str, links_allowed: bool) -> list[Finding]:
    """Forbidden elements (C5), tracking pixels, hidden and remote images, logos wrapped in
    links, inline animated GIFs, links and opt-out links in anchors (C4)."""
    out: list[Finding] = []
    for el in scan_html(html):
        where = describe(el, html)
        if el.tag in FORBIDDEN_ELEMENTS:
            out.append(Finding("html_forbidden_element", "html", el.start, el.end, where,
                               {"tag": el.tag}))
            continue
        if el.tag == "img":
            style = _style(el)
            w = _size(el.attrs.get("width")) or _size(style.get("width"))
            h = _size(el.attrs.get("height")) or _size(style.get("height"))
            src = el.attrs.get("src", "")
            hidden = (
                style.get("display") == "none" or style.get("visibility") == "hidden"
                or style.get("opacity", "").strip() in {"0", "0.0"}
            )
            if (w is not None and w <= 2) or (h is not None and h <= 2):
                out.append(Finding("tracking_pixel", "html", el.start, el.end, where))
            elif hidden:
                out.append(Finding("hidden_image", "html", el.start, el.end, where))
            if src.lower().startswith(("http://", "https://", "//")) and not _is_ours(
                src, mail_domain
            ):
                out.append(Finding("remote_image", "html", el.start, el.end, where))
            if el.inside_link:
                out.append(Finding("linked_image", "html", el.start, el.end, where))
            if src.lower().startswith("data:image/gif"):
                try:
                    raw = base64.b64decode(src.split(",", 1)[1], validate=False)
                except (ValueError, IndexError):
                    raw = b""
                if gif_frame_count(raw) > 1:
                    out.append(Finding("animated_gif", "html", el.start, el.end, where))
        elif el.tag == "a" and el.attrs.get("href"):
            href = el.attrs["href"].strip()
            if href.lower().startswith("mailto:"):
                if _is_ours(href[7:].split("@")[-1], mail_domain):
                    continue
                out.append(Finding("email_address", "html", el.start, el.end, where,
                                   {"excerpt": href[7:]}))
                continue
            if OPT_OUT.search(href) or OPT_OUT.search(el.link_text):
                out.append(Finding("opt_out_link", "html", el.start, el.end, where))
            elif not _is_ours(href, mail_domain):
                if not href.lower().startswith("https://"):
                    out.append(Finding("insecure_link" if links_allowed else "link", "html",
                                       el.start, el.end, where))
                elif not links_allowed:
                    out.append(Finding("link", "html", el.start, el.end, where))
    return out


def _is_ours(url: str, mail_domain: str) -> bool:
    host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", url.strip().lower()).lstrip("/")
    host = re.split(r"[/?#:]", host, maxsplit=1)[0]
    return host == mail_domain or host.endswith("." + mail_domain)


def gif_frame_count(data: bytes) -> int:
    """How many images a GIF holds (more than one: animated), read from its block structure.
    Written by hand: Pillow would be a large dependency for counting image descriptors."""
    if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
        return 0
    pos = 13
    flags = data[10]
    if flags & 0x80:
        pos += 3 * (2 ** ((flags & 0x07) + 1))
    frames = 0
    n = len(data)
    while pos < n:
        block = data[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            pos += 2
        elif block == 0x2C:  # image descriptor
            frames += 1
            if pos + 10 > n:
                break
            lflags = data[pos + 9]
            pos += 10
            if lflags & 0x80:
                pos += 3 * (2 ** ((lflags & 0x07) + 1))
            pos += 1  # LZW minimum code size
        else:
            break
        while pos < n:  # data sub-blocks
            size = data[pos]
            pos += 1 + size
            if size == 0:
                break
    return frames


# ---------------------------------------------------------------------------------------------
# Text detectors. Each starts from something rare and cheap to find with str.find or a regular
# expression with a literal first character ("@", "://", ".com", a digit, an emoji-block code
# point) and only then looks closer: a pattern that has to be tried at every position of a
# 10 KB text costs about a millisecond in Python.
# ---------------------------------------------------------------------------------------------

_EMAIL_AROUND = re.compile(r"([\w.+-]+)@([\w-]+(?:\.[\w-]+)+)", re.U)

_URL_HINT = re.compile(r"://|www\.|\.(?:com|net|org|info|biz|shop|store|es|fr|it|de|pt|br|"
                       r"eu|io|ly|me|co\.uk)(?![\w])", re.I)
_HOST_CHARS = re.compile(r"[\w.-]*$", re.U)
_SCHEME_BEFORE = re.compile(r"(?:https?|ftp)$", re.I)
OPT_OUT = re.compile(
    r"unsubscribe|opt[- ]?out|darse de baja|dar(?:te|se)? de baja|cancelar (?:la )?suscripci|"
    r"d[ée]sabonn|d[ée]sinscri|disiscriv|annulla(?:re)? l'iscrizione|cancelar (?:a )?inscri|"
    r"descadastr|abmelden|abbestellen|austragen",
    re.I,
)
OPT_OUT_HINTS = ("unsub", "opt", "baja", "suscrip", "abonn", "inscri", "iscriv", "descadastr",
                 "abmeld", "abbestell", "austrag")
#: Candidate phone numbers: a run of digits and separators. Only runs with 7–15 digits (E.164
#: has at most 15) go to phonenumbers, which costs ~150 µs per kilobyte run over everything.
_PHONE_RUN = re.compile(r"\d[\d \t().\-/]{5,22}\d")
_NON_DIGIT = re.compile(r"\D")
#: The marketplace's own order-number format (3-7-7 digits) is a reference, never a phone.
_ORDER_NUMBER = re.compile(r"\d{3}-\d{7}-\d{7}")
_DATE = re.compile(r"^\d{1,4}[/.\-]\d{1,2}[/.\-]\d{1,4}$")
_EMOJI_HINT = re.compile(
    "[\u203c\u2049\u2190-\u21ff\u2300-\u23ff\u24c2\u25aa-\u27bf\u2900-\u297f\u2b00-\u2bff"
    "\u3030\u303d\u3297\u3299\U0001f000-\U0001faff\ufe0f]"
)


def _ours(domain: str, mail_domain: str) -> bool:
    d = domain.lower()
    return d == mail_domain or d.endswith("." + mail_domain)


def _email_findings(text: str, fld: str, mail_domain: str,
                    at_words: Sequence[tuple[int, int]] | None = None) -> list[Finding]:
    """Addresses in ``text`` however they are disguised: found in the text as a reader sees it
    (:func:`bsm_shared.text.normalize`: character references, percent encoding, zero-width and
    full-width characters, "at"/"dot" spelled out in six languages), reported at the span of
    the original the sender wrote. ``at_words``: the hint scan's spans of the at-words."""
    norm = normalize(text, at_words=at_words)
    seen = norm.text
    out: list[Finding] = []
    pos = seen.find("@")
    while pos != -1:
        lo = max(0, pos - 64)
        m = _EMAIL_AROUND.search(seen, lo, min(len(seen), pos + 256))
        while m is not None and m.end() <= pos:  # a match that ends before this "@"
            m = _EMAIL_AROUND.search(seen, m.end(), min(len(seen), pos + 256))
        if m is not None and m.start() <= pos < m.end():
            if not _ours(m.group(2), mail_domain):
                start, end = norm.span(m.start(), m.end())
                out.append(Finding("email_address", fld, start, end))
            pos = seen.find("@", m.end())
        else:
            pos = seen.find("@", pos + 1)
    return out


def _link_findings(text: str, fld: str, mail_domain: str, links_allowed: bool) -> list[Finding]:
    out: list[Finding] = []
    last_end = -1
    for m in _URL_HINT.finditer(text):
        if m.start() < last_end:
            continue
        # Widen the hint to the whole link: back over the host (and the scheme), on to the
        # first space or quote.
        host = _HOST_CHARS.search(text, max(0, m.start() - 253), m.start())
        start = host.start() if host else m.start()
        if m.group(0) == "://":
            scheme = _SCHEME_BEFORE.search(text, max(0, m.start() - 5), m.start())
            if scheme is None:
                continue
            start = scheme.start()
        elif start > 0 and text[start - 1] == "@":
            continue  # the domain of an email address, found as such
        elif start > 0 and text[start - 1] == "/" and text[max(0, start - 3):start] == "://":
            continue
        end = m.end()
        while end < len(text) and text[end] not in " \t\r\n<>\"'":
            end += 1
        url = text[start:end].rstrip(".,;:!?)»")
        end = start + len(url)
        last_end = end
        if not url or _is_ours(url, mail_domain):
            continue
        if OPT_OUT.search(url) or OPT_OUT.search(text[max(0, start - 40):start]):
            out.append(Finding("opt_out_link", fld, start, end))
        elif url.lower().startswith("https://"):
            if not links_allowed:
                out.append(Finding("link", fld, start, end))
        else:
            out.append(Finding("insecure_link" if links_allowed else "link", fld, start, end))
    return out


def _region(region: str) -> str:
    region = (region or "").upper()
    return region if region in phonenumbers.SUPPORTED_REGIONS else "US"


@lru_cache(maxsize=8192)
def _phones_in(window: str, region: str) -> tuple[tuple[int, int], ...]:
    """Phone numbers in a short window (pure, so cached: the same order number or signature
    line comes back in message after message)."""
    found = tuple(
        (m.start, m.end)
        for m in phonenumbers.PhoneNumberMatcher(window, region, leniency=phonenumbers.Leniency.VALID)
    )
    if found:
        return found
    chunk = window.strip(" \t\r\n,;:")
    if chunk.lstrip("(").startswith(("+", "00")):
        # International format from any region: valid for its own country.
        try:
            num = phonenumbers.parse(chunk.lstrip("(").replace("00", "+", 1)
                                     if chunk.startswith("00") else chunk, None)
        except phonenumbers.NumberParseException:
            return ()
        if phonenumbers.is_valid_number(num):
            offset = window.find(chunk)
            return ((offset, offset + len(chunk)),)
    return ()


def _phone_findings(text: str, fld: str, region: str, ignore: tuple[str, ...] = ()) -> list[Finding]:
    out: list[Finding] = []
    reg = _region(region)
    for run in _PHONE_RUN.finditer(text):
        # The expression starts at a digit (so the regex engine can skip to digits fast);
        # a leading "+", "00" or "(" is picked up here.
        begin = run.start()
        while begin > 0 and text[begin - 1] in "+(":
            begin -= 1
        chunk = text[begin:run.end()]
        digits = len(_NON_DIGIT.sub("", chunk))
        if (digits < 7 or _DATE.match(chunk) or _ORDER_NUMBER.search(chunk)
                or any(i and i in chunk for i in ignore)):
            continue
        # phonenumbers sees only the candidate and a little context on each side (it needs a
        # word boundary to accept a match), never the whole text.
        lo, hi = max(0, begin - 2), min(len(text), run.end() + 2)
        for a, b in _phones_in(text[lo:hi], reg):
            out.append(Finding("phone_number", fld, lo + a, lo + b))
    return out


def _emoji_findings(text: str, fld: str) -> list[Finding]:
    out: list[Finding] = []
    seen_to = -1
    # The emoji library is run only on a short window around each code point from the emoji
    # blocks (it costs ~1 ms on 2 KB); windows are wide enough for ZWJ sequences and flags.
    for hint in _EMOJI_HINT.finditer(text):
        if hint.start() < seen_to:
            continue
        lo, hi = max(0, hint.start() - 12), min(len(text), hint.end() + 12)
        for e in emoji.emoji_list(text[lo:hi]):
            s, t = lo + e["match_start"], lo + e["match_end"]
            if t <= seen_to or e["emoji"] in {"©", "®", "™"}:
                continue
            out.append(Finding("emoji", fld, s, t, params={"emoji": e["emoji"]}))
            seen_to = t
        seen_to = max(seen_to, hi - 12)
    return out


# ---------------------------------------------------------------------------------------------
# Phrases (C3): marketing, coupons, cross-selling, positive reviews and incentives,
# thank-you-only messages, order/shipping confirmations — en, es, fr, it, pt, de.
# ---------------------------------------------------------------------------------------------


def _words(*alternatives: str) -> re.Pattern[str]:
    """Whole words or phrases, written in lower case and matched against :func:`lowered` text
    (same offsets): a case-insensitive expression costs the regex engine two and a half times
    as much per character."""
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.U)


PHRASES: dict[str, re.Pattern[str]] = {
    "coupon": _words(
        r"coupons?", r"voucher", r"promo(?:tional)? code", r"discount code", r"cup[oó]n(?:es)?",
        r"c[oó]digo (?:de )?(?:descuento|promocional|desconto)", r"code promo", r"bon de r[ée]duction",
        r"code de r[ée]duction", r"buono sconto", r"codice (?:sconto|promozionale)", r"cupom",
        r"cupões", r"vale[- ]desconto", r"gutschein(?:code)?", r"rabattcode",
        # "use code SAVE20": a code to type in is a coupon, whatever it is called.
        r"(?:use|using|enter|with) (?:the |our |this |my )?code",
        r"(?:usa|use|utiliza|utilice|introduce|introduzca|con) (?:el |nuestro |este )?c[oó]digo",
        r"(?:utilisez|utilise|entrez|saisissez|avec) (?:le |notre |ce )?code",
        r"(?:usa|usi|inserisci|inserisca|con) (?:il |questo |il nostro )?codice",
        r"(?:use|usa|utilize|insira|com) (?:o |este |o nosso )?c[oó]digo",
        r"(?:mit dem|mit unserem|den) code",
    ),
    "marketing": _words(
        r"\d+ ?% (?:off|de descuento|de r[ée]duction|di sconto|de desconto|rabatt)",
        r"special offer", r"limited[- ]time offer", r"black friday", r"flash sale", r"our sale",
        r"oferta especial", r"rebajas", r"promoci[oó]n(?:es)?", r"offre sp[ée]ciale", r"soldes",
        r"promotions?", r"offerta speciale", r"saldi", r"promozion[ei]", r"oferta especial",
        r"promoç(?:ão|ões)", r"liquidação", r"sonderangebot", r"angebot des tages",
        r"ausverkauf", r"aktionspreis",
        # A discount on a purchase still to come is a promotion, in a reply as much as anywhere.
        r"(?:discount|saving)s? of \d+ ?%", r"save \d+ ?%", r"next purchases?",
        r"descuento del? \d+ ?%",
        r"(?:r[ée]duction|remise) de \d+ ?%", r"prochains? achats?",
        r"sconto del(?:l'| )?\d+ ?%", r"prossim[oi] acquist[oi]",
        r"desconto de \d+ ?%", r"pr[oó]ximas? compras?",
        r"rabatt von \d+ ?%", r"\d+ ?% auf (?:ihre|deine|den|die|alle)",
        r"n[äa]chste[nr]? eink[äa]uf(?:e|en)?",
    ),
    "cross_selling": _words(
        r"(?:check out|visit|browse|discover) our (?:other )?(?:products|store|shop|range|collection)",
        r"other products", r"you (?:may|might) also (?:like|love)", r"newsletter",
        r"follow us", r"otros productos", r"visit[ae] nuestra tienda", r"s[ií]guenos",
        r"tambi[ée]n te (?:puede|podr[ií]a) (?:gustar|interesar)", r"nos autres produits",
        r"visitez notre boutique", r"suivez[- ]nous", r"altri prodotti", r"visita il nostro negozio",
        r"seguici", r"outros produtos", r"visite a nossa loja", r"siga[- ]nos",
        r"andere(?:n)? produkte", r"besuchen sie unseren shop", r"folgen sie uns",
    ),
    "positive_review_request": _words(
        r"(?:5|five)[- ]stars?", r"positive (?:review|feedback|rating)",
        r"good (?:review|feedback|rating)", r"(?:change|remove|update) (?:your|the) (?:negative )?(?:review|feedback)",
        r"(?:5|cinco) estrellas", r"(?:rese[ñn]a|opini[oó]n|valoraci[oó]n) positiva",
        r"buena (?:rese[ñn]a|opini[oó]n|valoraci[oó]n)", r"(?:5|cinq) [ée]toiles",
        r"(?:avis|commentaire|évaluation) positi(?:f|ve)", r"(?:5|cinque) stelle",
        r"(?:recensione|valutazione|feedback) positiv[oa]", r"(?:5|cinco) estrelas",
        r"(?:avaliação|opinião|comentário) positiv[oa]", r"(?:5|fünf) sterne",
        r"positive(?:n)? (?:bewertung|rezension|feedback)", r"gute(?:n)? bewertung",
    ),
    "review_incentive": _words(
        r"in exchange for (?:a |an |your )?(?:honest )?(?:review|feedback)",
        r"(?:refund|gift|free \w+|discount)[^.!?]{0,40}(?:for|if you leave) (?:a |your )?review",
        r"a cambio de (?:una |tu |su )?(?:rese[ñn]a|opini[oó]n|valoraci[oó]n)",
        r"en [ée]change d'(?:un )?(?:avis|commentaire)",
        r"in cambio (?:di|della) (?:una )?(?:recensione|valutazione)",
        r"em troca de (?:uma )?(?:avaliação|opinião)",
        r"im austausch (?:für|gegen) (?:eine )?(?:bewertung|rezension)",
        r"für eine (?:positive )?bewertung (?:erhalten|bekommen)",
    ),
    "order_confirmation": _words(
        r"your order (?:has been|was|is) (?:shipped|dispatched|confirmed|sent)",
        r"order confirmation", r"shipping confirmation", r"tracking number",
        r"su pedido (?:ha sido|fue|est[aá]) (?:enviado|confirmado)", r"confirmaci[oó]n del pedido",
        r"n[uú]mero de seguimiento", r"votre commande (?:a [ée]t[ée]|est) (?:exp[ée]di[ée]e|confirm[ée]e)",
        r"confirmation de (?:commande|l'exp[ée]dition)", r"num[ée]ro de suivi",
        r"il (?:suo|tuo) ordine [èe] stato (?:spedito|confermato)", r"conferma d'ordine",
        r"numero di (?:tracking|spedizione)",
        r"(?:a sua|sua) (?:encomenda|pedido) (?:foi|está) (?:enviad[oa]|confirmad[oa])",
        r"confirmação (?:do pedido|da encomenda)", r"código de rastreio",
        r"ihre bestellung (?:wurde|ist) (?:versandt|verschickt|bestätigt)", r"bestellbestätigung",
        r"versandbestätigung", r"sendungsnummer",
    ),
}

_THANKS = _words(
    r"thank(?:s| you)(?: so much| very much)?(?: for (?:your|the) (?:order|purchase|business|trust))?",
    r"(?:muchas )?gracias(?: por (?:su|tu) (?:compra|pedido|confianza))?",
    r"merci(?: beaucoup)?(?: pour votre (?:commande|achat|confiance))?",
    r"grazie(?: mille)?(?: per (?:il (?:suo|tuo) (?:ordine|acquisto)|la (?:sua|tua) fiducia))?",
    r"(?:muito )?obrigad[oa](?: pela (?:sua )?(?:compra|encomenda|confiança))?",
    r"(?:vielen )?dank(?: für (?:ihre|deine) (?:bestellung|einkauf|vertrauen))?", r"danke(?: schön)?",
)
_FILLER = _words(
    r"hi", r"hello", r"dear", r"hola", r"estimad[oa]", r"bonjour", r"cher", r"ch[eè]re", r"ciao",
    r"gentile", r"caro", r"cara", r"olá", r"ol[aá]", r"prezad[oa]", r"hallo", r"liebe[r]?",
    r"sehr geehrte[r]?", r"best", r"kind", r"regards", r"saludos", r"un saludo", r"cordialement",
    r"cordiali saluti", r"saluti", r"atenciosamente", r"cumprimentos", r"grüße", r"gruß",
    r"mit freundlichen grüßen", r"again", r"de nuevo", r"encore", r"ancora", r"novamente",
    r"nochmals", r"the team", r"el equipo", r"l'[ée]quipe", r"il team", r"a equipa", r"a equipe",
    r"das team", r"we", r"nosotros", r"nous", r"noi", r"nós", r"wir", r"very", r"much", r"so",
    r"for", r"your", r"purchase", r"order", r"customer", r"cliente", r"client", r"kunde",
)


# An incentive for a review (C3), whatever words it uses: something of value and a request for
# a review, rating or feedback in one sentence, in either order. The phrases above catch the
# set expressions ("in exchange for a review"); these two lists catch the rest.

#: Something of value a seller offers: a discount, refund, gift, coupon, money.
INCENTIVE = _words(
    r"discount(?:s|ed)?", r"refund(?:s|ed)?", r"reimburse(?:ment|d)?", r"rebates?",
    r"gift(?: ?cards?| ?certificates?|s)?", r"coupons?", r"vouchers?", r"cash ?back",
    r"money(?: back)?", r"free (?:gift|product|item|sample|unit|shipping|of charge)s?",
    r"for free", r"store credit", r"\d+ ?% off", r"save \d+",
    r"descuentos?", r"reembols(?:o|os|ar|amos|aremos)", r"regal(?:o|os|amos|aremos)",
    r"cup[oó]n(?:es)?", r"vales? (?:de )?(?:descuento|regalo|compra)", r"gratis",
    r"gratuit[oa]s?", r"dinero", r"tarjeta regalo", r"cheque regalo",
    r"r[ée]ductions?", r"(?:une|la|d'une) remise", r"remises? de \d+",
    r"rembours(?:ement|er|ons|erons|é|ée)", r"cadeaux?", r"bons? d'achat", r"gratuit(?:e|s|es)?",
    r"gratuitement", r"argent", r"carte[- ]cadeau", r"(?:nous )?vous offr(?:ons|irons)",
    r"scont[oi]", r"rimbors(?:o|i|are|iamo|eremo)", r"regal(?:o|i|iamo)", r"omaggio",
    r"buon[oi] (?:sconto|regalo|acquisto)", r"gratuit[oi]", r"denaro", r"soldi",
    r"carta regalo",
    r"descontos?", r"brindes?", r"um presente", r"cupom",
    r"cupons", r"cupão", r"cupões", r"vale[- ](?:desconto|presente|compras)", r"gr[aá]tis",
    r"dinheiro", r"cart[aã]o[- ](?:presente|oferta)", r"oferec(?:emos|eremos)",
    r"rabatt(?:e|code)?", r"(?:preis)?nachlass", r"r[üu]ckerstattung", r"erstatt(?:en|ung|et)",
    r"geschenk(?:e|gutschein)?", r"schenk(?:en|t|e)", r"gutschein(?:e|code)?", r"kostenlos(?:e|en)?", r"geld",
    # money, however it is written: 10 €, €10, $5, 5 euros, 20 EUR
    r"\d+(?:[.,]\d+)? ?(?:€|\$|£|eur(?:o|os)?|usd|dollars?|pounds?)", r"[€$£] ?\d+",
)
#: A request for a review, rating or feedback: a request verb near the word (either order where
#: the language puts the verb last), a star rating, "your review", rating the shop or product.
_OBJECT = (r"(?:us|the product|this product|the item|this item|your purchase|your experience"
           r"|our (?:shop|store|service))")
REVIEW_REQUEST = _words(
    r"(?:leave|write|post|give|submit|share|add)(?: us| me)?(?: \S+){0,3}? "
    r"(?:reviews?|ratings?|feedback|testimonials?)",
    r"(?:your|an?) (?:(?:honest|quick|short|product|positive|good|great|\d-star|five-star) )?"
    r"reviews?(?! of (?:your|the) (?:case|claim|request|photos?|return))",
    r"rate " + _OBJECT, r"rating (?:of|for) " + _OBJECT,
    r"(?:\d|five|cinco|cinq|cinque|fünf) ?-?(?:stars?|estrellas?|[ée]toiles?|stelle|estrelas?"
    r"|sternen?)",
    r"(?:deja|dejar|d[ée]janos|d[ée]jenos|escribe|escriba|escribir|publica|publique|da|d[ée]|"
    r"danos|d[ée]nos|comparte|comparta)(?: \S+){0,3}? "
    r"(?:rese[ñn]as?|opini[oó]n|valoraci[oó]n|calificaci[oó]n|comentarios?|puntuaci[oó]n)",
    r"(?:tu|su|una) (?:(?:sincera|buena|breve) )?(?:rese[ñn]a|valoraci[oó]n|calificaci[oó]n)",
    r"(?:valor|calific|punt[uú])(?:a|e|as|es|ar)(?:nos)? (?:el|nuestro|su|tu|la|nuestra) "
    r"(?:producto|art[ií]culo|compra|pedido|tienda|servicio)",
    r"val[oó]ranos",
    r"(?:laissez|laisse|laisser|[ée]crivez|[ée]crire|donnez|donner|publiez|partagez)"
    r"(?:[- ]nous)?(?: \S+){0,3}? (?:avis|commentaires?|[ée]valuations?|notes?)",
    r"(?:votre|un) avis(?! de (?:passage|livraison|r[ée]ception|d[ée]p[ôo]t|exp[ée]dition))",
    r"(?:notez|[ée]valuez|notez-nous|[ée]valuez-nous) (?:le produit|l'article|notre boutique|"
    r"votre achat|nous)",
    r"(?:lasci|lasciare|lasciaci|ci lasci|scrivi|scriva|scrivere|dia|dai|dare|pubblica|"
    r"pubblichi|condividi|condivida)(?: \S+){0,3}? "
    r"(?:recension[ei]|valutazion[ei]|feedback|giudizi?o|opinion[ei])",
    r"(?:la sua|la tua|una) (?:(?:sincera|breve|buona) )?(?:recensione|valutazione)",
    r"(?:valut|recens)(?:a|i|are)(?:ci)? (?:il prodotto|l'articolo|il nostro negozio|"
    r"il suo acquisto|il tuo acquisto)",
    r"(?:deixe|deixa|deixar|deixe-nos|escreva|escrever|d[êe]|dar|publique|partilhe|compartilhe)"
    r"(?: \S+){0,3}? (?:avalia[çc](?:ão|ões)|opini(?:ão|ões)|coment[áa]rios?|"
    r"classifica[çc](?:ão|ões)|reviews?)",
    r"(?:a sua|sua|uma) (?:(?:sincera|breve|boa) )?(?:avalia[çc]ão|classifica[çc]ão)",
    r"avali(?:e|a|ar)(?:-nos)? (?:o produto|o artigo|a (?:nossa )?loja|a sua compra|a compra)",
    r"(?:eine|ihre|deine|einer|ihrer|kurze|ehrliche|gute|positive)n? "
    r"(?:bewertung|rezension|produktbewertung|erfahrungsbericht)",
    r"(?:bewertung|rezension|feedback) (?:\S+ ){0,2}?(?:hinterlassen|schreiben|abgeben|geben)",
    r"(?:bewerten sie|bewerte|bewerten) (?:uns|das produkt|den artikel|ihren kauf|unseren shop)",
    r"(?:uns|das produkt|den artikel|ihren kauf|unseren shop) (?:zu )?bewerten",
)
#: Hints (lower-case substrings) of the two lists: each match of a list contains one of its own.
INCENTIVE_HINTS = (
    "discount", "refund", "reimburs", "rebate", "gift", "coupon", "voucher", "cash", "money",
    "free", "credit", "%", "save", "descuento", "reembols", "regal", "cupón", "cupon", "vale ",
    "vales", "vale-", "gratis", "gratuit", "dinero", "tarjeta", "cheque", "réduction", "reduction",
    "remise", "rembours", "cadeau", "bon", "argent", "carte", "scont", "rimbors", "omaggio", "buon",
    "denaro", "soldi", "carta", "desconto", "brinde", "presente", "cupom", "cupõ", "cupão",
    "grátis", "dinheiro", "cartão", "cartao", "rabatt", "nachlass", "rückerstatt", "ruckerstatt",
    "erstatt", "geschenk", "gutschein", "kostenlos", "geld", "€", "$", "£", "eur", "usd", "dollar",
    "pound", "offr", "oferec", "schenk",
)
REVIEW_HINTS = (
    "review", "rating", "rate ", "feedback", "testimonial", "star", "estrell", "étoile",
    "etoile", "stelle", "estrela", "stern", "reseña", "resena", "opini", "valor", "való",
    "calific", "puntu", "puntú", "avis", "commentaire", "évalu", "evalu", "note", "recens",
    "valut", "giudizi", "avali", "coment", "classifica", "bewert", "rezension",
    "erfahrungsbericht",
)
#: Where a sentence may end (:func:`_sentence` keeps ".", "!" and "?" before a space, not an
#: ellipsis, and line breaks). A bare character class: the regex engine skips to it fast.
_SENTENCE_MARK = re.compile(r"[.!?\r\n]")
#: How far around a review request an incentive is looked for (within its sentence).
_SENTENCE_REACH = 160
#: How far before and after its hint a match of either list may reach (the longest phrase,
#: with room for the words a request may put between its verb and the word "review", and for
#: what a request must not be followed by: "a review of your case").
_BEFORE, _AFTER = 56, 40


def _ends_sentence(low: str, i: int) -> bool:
    c = low[i]
    if c in "\r\n":
        return True
    after = low[i + 1:i + 2]
    return (after == "" or after.isspace()) and not (c == "." and low[i - 1:i] == ".")


def _sentence(low: str, a: int, b: int) -> tuple[int, int]:
    """The sentence around ``low[a:b]``, at most :data:`_SENTENCE_REACH` either side."""
    lo, hi = max(0, a - _SENTENCE_REACH), min(len(low), b + _SENTENCE_REACH)
    for m in _SENTENCE_MARK.finditer(low, lo, a):
        if _ends_sentence(low, m.start()):
            lo = m.end()
    for m in _SENTENCE_MARK.finditer(low, b, hi):
        if _ends_sentence(low, m.start()):
            return lo, m.start()
    return lo, hi


def incentive_findings(low: str, fld: str, hints: Hints) -> list[Finding]:
    """``review_incentive``: an incentive and a review request in one sentence, in either
    order; the finding spans both. ``low``: the :func:`lowered` text; ``hints``: its
    :func:`scan_hints`. The expressions run only where a sentence holds a hint of each kind,
    and only near those hints (every match of either list contains a hint of its own)."""
    out: list[Finding] = []
    offers = sorted(hints.get("_incentive", ()))
    offer_starts = [a for a, _ in offers]
    done_to = -1
    for a, b in sorted(hints.get("_review", ())):
        if a < done_to:
            continue
        # The hint's sentence (at most _SENTENCE_REACH either side) must hold an offer's hint.
        lo, hi = _sentence(low, a, b)
        near = offers[bisect.bisect_left(offer_starts, lo):bisect.bisect_left(offer_starts, hi)]
        if not near:
            continue
        for m in REVIEW_REQUEST.finditer(low, max(lo, a - _BEFORE), min(hi, b + _AFTER)):
            if not (m.start() <= a and b <= m.end()):
                continue
            offer = next((o for x, y in near
                          if (o := INCENTIVE.search(low, max(lo, x - _BEFORE),
                                                    min(hi, y + _AFTER)))), None)
            if offer is None:
                break
            start, end = min(m.start(), offer.start()), max(m.end(), offer.end())
            out.append(Finding("review_incentive", fld, start, end))
            done_to = end
            break
    return out


#: Cheap hints (lower-case substrings): a category's expression runs only if one is present.
PHRASE_HINTS: dict[str, tuple[str, ...]] = {
    "coupon": ("coupon", "voucher", "promo", "code", "cupon", "cupón", "cupom", "cupõ",
               "código", "codigo", "bon de", "buono", "codice", "vale-", "vale ", "gutschein",
               "rabatt"),
    "marketing": ("%", "offer", "black friday", "sale", "oferta", "rebajas", "promo", "offre",
                  "soldes", "offerta", "saldi", "liquida", "angebot", "ausverkauf", "aktion",
                  "next purchase", "próxim", "proxim", "prochain", "prossim",
                  "nächste", "nachste"),
    "cross_selling": (" our ", "other products", "you may", "you might", "newsletter", "follow",
                      "otros productos", "tienda", "sígu", "sigu", "también te", "nos autres",
                      "boutique", "suivez", "altri prodotti", "negozio", "seguici",
                      "outros produtos", "loja", "siga", "andere", "shop", "folgen"),
    "positive_review_request": ("star", "positiv", "good ", "review", "feedback", "estrella",
                                "buena", "étoile", "stelle", "estrela", "sterne", "bewertung"),
    "review_incentive": ("exchange", "review", "a cambio", "échange", "in cambio", "em troca",
                         "austausch", "bewertung"),
    "order_confirmation": ("shipped", "dispatched", "confirm", "tracking", "enviado",
                           "seguimiento", "expédi", "suivi", "spedito", "conferma",
                           "spedizione", "enviad", "confirma", "rastreio", "versandt",
                           "verschickt", "bestätig", "sendungsnummer"),
}



def _hint_automaton() -> ahocorasick.Automaton:
    """One Aho–Corasick automaton over every hint: a single pass over the text finds them all
    (checking 80 hints one by one with ``in`` costs ~100 µs on 2 KB)."""
    by_hint: dict[str, set[str]] = {}
    for code, hints in PHRASE_HINTS.items():
        for h in hints:
            by_hint.setdefault(h, set()).add(code)
    for h in AT_WORDS:
        by_hint.setdefault(h, set()).add("_at")
    for h in OPT_OUT_HINTS:
        by_hint.setdefault(h, set()).add("_opt_out")
    for h in INCENTIVE_HINTS:
        by_hint.setdefault(h, set()).add("_incentive")
    for h in REVIEW_HINTS:
        by_hint.setdefault(h, set()).add("_review")
    automaton = ahocorasick.Automaton()
    for h, codes in by_hint.items():
        automaton.add_word(h, (len(h), frozenset(codes)))
    automaton.make_automaton()
    return automaton


_HINTS = _hint_automaton()


def lowered(text: str) -> str:
    """``text`` in lower case with the same offsets (a character whose lower case is longer,
    like "İ", is kept as it is)."""
    low = text.lower()
    if len(low) != len(text):
        low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return low


Hints = dict[str, list[tuple[int, int]]]


def scan_hints(low: str) -> Hints:
    """One Aho–Corasick pass: per category (and ``_at``/``_opt_out``) the spans of its hints."""
    found: Hints = {}
    for end, (length, codes) in _HINTS.iter(low):
        span = (end + 1 - length, end + 1)
        for code in codes:
            found.setdefault(code, []).append(span)
    return found


#: What only a proactive message may not say: a reply may answer "where is my order?".
PROACTIVE_ONLY: frozenset[str] = frozenset({"order_confirmation"})


def phrase_findings(text: str, fld: str, hints: Hints | None = None, *,
                    proactive: bool = True) -> list[Finding]:
    """C3's phrases in one piece of a seller's message: marketing, coupons, cross-selling,
    review pressure and incentives in every message (``proactive`` or a reply), order and
    shipping confirmations (:data:`PROACTIVE_ONLY`) in proactive ones."""
    out: list[Finding] = []
    low = lowered(text)
    if hints is None:
        hints = scan_hints(low)
    # The category's expression runs only in windows around its hints (every phrase it knows
    # contains one, and none is longer than the margin), not over the whole text.
    windows: dict[str, list[tuple[int, int]]] = {
        code: [(max(0, a - _MARGIN), min(len(text), b + _MARGIN)) for a, b in spans]
        for code, spans in hints.items() if not code.startswith("_")
    }
    for code, pattern in PHRASES.items():
        spans = windows.get(code)
        if not spans or (code in PROACTIVE_ONLY and not proactive):
            continue
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted(spans):
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        for lo, hi in merged:
            for m in pattern.finditer(low, lo, hi):
                out.append(Finding(code, fld, m.start(), m.end(),
                                   params={"phrase": text[m.start():m.end()]}))
    if "_incentive" in hints and "_review" in hints:
        named = [(f.start or 0, f.end or 0) for f in out if f.code == "review_incentive"]
        out += [replace(f, params={"phrase": text[f.start:f.end]})
                for f in incentive_findings(low, fld, hints)
                if not any(a < (f.end or 0) and (f.start or 0) < b for a, b in named)]
    return out


_MARGIN = 120


def is_thank_you_only(text: str, sender_name: str = "") -> bool:
    """A message whose only content is thanks (greetings, sign-off and the sender's name
    aside)."""
    low = lowered(text)
    if len(text) > 400 or not _THANKS.search(low):
        return False
    rest = _THANKS.sub(" ", low)
    rest = _FILLER.sub(" ", rest)
    for part in lowered(sender_name).split():
        rest = rest.replace(part, " ")
    words = re.findall(r"[^\W\d_]{2,}", rest, re.U)
    return len(words) <= 2


def text_findings(
    text: str, fld: str, *, region: str, mail_domain: str, links_allowed: bool,
    ignore: tuple[str, ...] = (), html: bool = False, hints: Hints | None = None,
) -> list[Finding]:
    """Contact data, links and emojis in one piece of text (C4). With ``html=True`` the text is
    HTML source: what lies inside a tag (an attribute) is left to :func:`html_findings`.
    ``hints``: the :func:`scan_hints` of the text, when the caller has it already."""
    if hints is None:
        hints = scan_hints(lowered(text))
    out = _email_findings(text, fld, mail_domain, hints.get("_at", []))
    out += _link_findings(text, fld, mail_domain, links_allowed)
    # A phone number inside an address or a link is that address's, not a second finding.
    # (Sorted starts with a running maximum of ends: linear, where a scan of every address per
    # number was quadratic — 7 s for 200 KB of numbers and addresses.)
    taken = sorted((f.start or 0, f.end or 0) for f in out)
    starts = [a for a, _ in taken]
    reach = list(itertools.accumulate((b for _, b in taken), max))
    for f in _phone_findings(text, fld, region, ignore):
        i = bisect.bisect_right(starts, f.start or 0) - 1
        if i < 0 or reach[i] <= (f.start or 0):
            out.append(f)
    out += _emoji_findings(text, fld)
    if "_opt_out" in hints and not any(f.code == "opt_out_link" for f in out):
        m = OPT_OUT.search(text)
        if m is not None and _URL_HINT.search(text, m.start(), m.start() + 120):
            out.append(Finding("opt_out_link", fld, m.start(), m.end()))
    if html:
        out = [f for f in out if f.start is None or not inside_tag(text, f.start)]
    return out
