"""The HTML sanitiser's output holds only what the documented allow-list names (C5,
docs/policy.md): the allowed tags, their allowed attributes, links and quotation sources to
``http(s)://`` pages only, images from ``http(s)://``, ``cid:`` or an inline raster ``data:image``,
and ``style`` declarations of the allowed properties with plain values. Whatever a vector tries —
script URLs, ``data:`` documents, CSS expressions, URL-bearing attributes off the list — leaves
nothing inert behind.

The oracle below reads the output with the standard library's HTML parser and checks it against
the allow-list written out here, independently of the sanitiser's own helpers."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from bsm_policy.content import ALLOWED_ATTRIBUTES, ALLOWED_CSS, ALLOWED_TAGS, sanitize_html

JS = "javascript:alert(1)"
B64_HTML = "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"

#: Script and document URLs, spelled the ways filters miss them.
BAD_URLS = [
    JS, "JaVaScRiPt:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)",
    "java&#x09;script:alert(1)", "java&#10;script:alert(1)", "&#106;avascript:alert(1)",
    "&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1)",
    "javascript&colon;alert(1)", "vbscript:msgbox(1)", "livescript:x", "mocha:x",
    "feed:javascript:alert(1)", B64_HTML, "data:text/html,<script>alert(1)</script>",
    "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+", "data:,x", "jar:http://x!/",
    "file:///etc/passwd", "ftp://files.example/x", "mailto:ana@gmail.example",
    "tel:+34600000000", "sms:+34600000000", "//evil.example/x", "/v1/messages",
    "\\\\evil.example\\x", "?next=evil", "https:evil.example", "http:/evil.example",
    "https:///evil.example", "blob:https://x.example/1", "filesystem:https://x.example/t/x",
]
#: CSS that loads, runs, escapes or hides.
BAD_STYLES = [
    "width:expression(alert(1))", "width: expression (alert(1))", "xss:expr/**/ession(alert(1))",
    "color:\\65 xpression(alert(1))", "background:url(javascript:alert(1))",
    "background-image:url(https://tracker.example/p.gif)", "behavior:url(x.htc)",
    "-moz-binding:url(http://evil.example/x.xml#x)", "@import 'https://evil.example/x.css'",
    "color:red;background:url(//evil.example)", "font-family:'x';background:url(x)",
    "width:calc(1px + expression(1))", "color:red/*x*/;width:1px", "list-style-type:url(x)",
    "border:1px solid url(x)", "color:&#101;xpression(1)", "height:var(--x)",
    "font-size:attr(title)", "position:fixed;top:0;left:0", "display:none",
]
VECTORS: list[str] = (
    [f'<a href="{u}">link</a>' for u in BAD_URLS]
    + [f'<img src="{u}" alt="i">' for u in BAD_URLS[:16]]
    + [f'<blockquote cite="{u}">q</blockquote>' for u in BAD_URLS[:12]]
    + [f'<p style="{s}">styled</p>' for s in BAD_STYLES]
    + [
        # URL-bearing attributes off the list.
        f'<q cite="{JS}">q</q>', f'<del cite="{JS}">d</del>', f'<ins cite="{JS}">i</ins>',
        f'<img srcset="{JS} 1x, https://x.example/a.png 2x" src="cid:a">',
        f'<img lowsrc="{JS}" dynsrc="{JS}" longdesc="{JS}">',
        f'<table background="{JS}"><tr><td background="{JS}">x</td></tr></table>',
        f'<body background="{JS}">x</body>', f'<div data-href="{JS}" data-url="{JS}">x</div>',
        f'<form action="{JS}"><button formaction="{JS}">b</button></form>',
        f'<input type="image" src="{JS}" formaction="{JS}">',
        f'<video poster="{JS}" src="{JS}"></video>', f'<audio src="{JS}"></audio>',
        f'<svg><a xlink:href="{JS}"><text>x</text></a></svg>',
        f'<svg><use href="{B64_HTML}"/></svg>',
        '<svg><animate attributeName="href" to="javascript:alert(1)"/></svg>',
        f'<math href="{JS}">m</math>', f'<iframe src="{JS}" srcdoc="<script>x</script>">',
        f'<object data="{B64_HTML}"></object>', f'<embed src="{B64_HTML}">',
        '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
        f'<base href="{JS}">', '<link rel="stylesheet" href="https://evil.example/x.css">',
        f'<area href="{JS}">', f'<a href="https://ok.example" ping="https://track.example">p</a>',
        f'<a href="https://ok.example" formaction="{JS}" action="{JS}">a</a>',
        # Event handlers and friends.
        '<img src="cid:x" onerror="alert(1)">', '<a href="https://ok.example" onclick="x()">c</a>',
        '<p onmouseover="alert(1)">p</p>', '<div tabindex="1" onfocus="alert(1)" autofocus>d</div>',
        '<body onload="alert(1)">b</body>', '<span style="color:red" onmouseenter="x">s</span>',
        # Parser tricks.
        f'<a href={JS}>unquoted</a>', f"<a href='{JS}'>single</a>", f'<A HREF="{JS}">upper</A>',
        f'<a href="{JS}"', f'<a\nhref="{JS}">newline</a>', f'<a href="{JS}\x00">nul</a>',
        '<scr<script>ipt>alert(1)</script>', '<<script>alert(1)//<</script>',
        '<!--[if gte IE 4]><script>alert(1)</script><![endif]-->',
        '<![CDATA[<script>alert(1)</script>]]>', '<style>*{background:url(javascript:x)}</style>',
        f'<p><a href="https://ok.example"><img src="{JS}"></a></p>',
        '<img src="x:alert(1)" alt="x">', '<img src=`javascript:alert(1)`>',
        '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
        '<template><img src=x onerror=alert(1)></template>',
        f'<font color="red" face="{JS}" size="{JS}">f</font>',
        '<p title="javascript:alert(1)" lang="x" dir="rtl" align="left">text attrs</p>',
    ]
)

SAFE_HREF = re.compile(r"https?://[^\s/\\][^\s]*", re.I)
SAFE_SRC = re.compile(
    r"https?://[^\s/\\][^\s]*|cid:\S+|data:image/(?:png|jpeg|gif|bmp|tiff|webp)[;,]\S*", re.I)
COLOUR_FUNCTION = re.compile(r"(?:rgba?|hsla?)\([\d\s.,%/]*\)", re.I)
GENERIC = {"style", "title", "lang", "dir", "align"}


def problems(html: str) -> list[str]:
    """What in sanitised ``html`` the documented allow-list does not name."""
    found: list[str] = []

    class Oracle(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag not in ALLOWED_TAGS:
                found.append(f"tag {tag}")
            allowed = GENERIC | ALLOWED_ATTRIBUTES.get(tag, set()) | (
                {"rel"} if tag == "a" else set())
            for name, value in attrs:
                value = value or ""
                if name not in allowed:
                    found.append(f"{tag}[{name}]")
                elif name in ("href", "cite") and not SAFE_HREF.fullmatch(value):
                    found.append(f"{tag}[{name}]={value!r}")
                elif name == "src" and not SAFE_SRC.fullmatch(value):
                    found.append(f"{tag}[src]={value!r}")
                elif name == "style":
                    for decl in filter(None, value.split(";")):
                        prop, _, val = decl.partition(":")
                        plain = COLOUR_FUNCTION.sub("", val).lower()
                        if prop.strip().lower() not in ALLOWED_CSS or any(
                                bad in plain for bad in ("(", ")", "\\", "/*", ":", "url",
                                                         "expression", "@import")):
                            found.append(f"{tag}[style]={decl!r}")
                elif name not in ("href", "cite", "src", "style", "title", "alt", "rel") and (
                        not re.fullmatch(r"[\w\s#%.,'\"+-]*", value)):
                    found.append(f"{tag}[{name}]={value!r}")  # a plain value, nothing else

        handle_startendtag = handle_starttag

    Oracle(convert_charrefs=True).feed(html)
    return found


def test_the_corpus_has_at_least_80_vectors():
    assert len(VECTORS) >= 80, len(VECTORS)
    assert len(set(VECTORS)) == len(VECTORS)


@pytest.mark.parametrize("vector", VECTORS)
def test_a_hostile_vector_leaves_only_what_the_allow_list_names(vector):
    out = sanitize_html(vector)
    assert out is not None
    assert problems(out) == [], out
    assert sanitize_html(out) == out  # and the result is a fixed point


@pytest.mark.parametrize("html, kept", [
    ('<a href="https://shop.example/o?id=1#x">o</a>', 'href="https://shop.example/o?id=1#x"'),
    ('<a href="http://shop.example/">o</a>', 'href="http://shop.example/"'),
    ('<img src="cid:logo@shop" alt="logo">', 'src="cid:logo@shop"'),
    (f'<img src="{PNG}">', f'src="{PNG}"'),
    ('<img src="https://cdn.shop.example/a.png">', 'src="https://cdn.shop.example/a.png"'),
    ('<blockquote cite="https://shop.example/q">q</blockquote>', 'cite="https://shop.example/q"'),
    ('<p style="color:#333;font-size:12px;font-weight:bold">s</p>',
     'style="color:#333;font-size:12px;font-weight:bold"'),
    ('<td style="background-color:rgb(240, 240, 240);padding:4px">c</td>',
     "background-color:rgb(240, 240, 240);padding:4px"),
    ('<span style="font-family:Arial, sans-serif;text-align:right">t</span>',
     "font-family:Arial , sans-serif;text-align:right"),  # (nh3 writes the comma so)
])
def test_what_the_allow_list_names_is_kept(html, kept):
    out = sanitize_html(f"<table><tr>{html}</tr></table>" if html.startswith("<td") else html)
    assert kept in out
    assert problems(out) == []


def test_a_style_keeps_its_plain_declarations_and_loses_the_rest():
    out = sanitize_html('<p style="color:red;width:expression(alert(1));margin:0">x</p>')
    assert out == '<p style="color:red;margin:0">x</p>'


def test_the_issues_three_leftovers_are_gone():
    out = sanitize_html(f'<a href="{B64_HTML}">a</a><p style="width:expression(alert(1))">b</p>'
                        f'<blockquote cite="{JS}">c</blockquote>')
    assert out == '<a rel="noopener noreferrer">a</a><p>b</p><blockquote>c</blockquote>'
