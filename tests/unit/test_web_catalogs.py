"""The web message center's language catalogs (``static/i18n/<lang>.json``): every language
the marketplace speaks has one, each has every key the page and its scripts use, with the same
placeholders, and every id the server sends that the page names (contact reasons, report
reasons, event types, platform templates, views, states, roles) has its words."""

from __future__ import annotations

import json
import re
from typing import get_args

import pytest

from bsm_gateway import i18n as gateway_i18n
from bsm_gateway import web
from bsm_policy import engine
from bsm_shared.contract.events import EVENT_MODELS
from bsm_shared.contract.payloads import REPORT_REASONS, Span

STATIC = web.STATIC
CATALOGS = STATIC / "i18n"
SCRIPTS = sorted(STATIC.glob("*.js"))
PLACEHOLDER = re.compile(r"\{(\w+)\}")


#: Strings in the scripts shaped like keys that are not catalog keys (file names).
NOT_KEYS = {"i18n.js", "common.js", "compose.js", "operator.js", "app.js"}


def catalog(lang: str) -> dict[str, str]:
    return json.loads((CATALOGS / f"{lang}.json").read_text(encoding="utf-8"))


def used_keys() -> set[str]:
    """Keys named literally: data-i18n* attributes in the page, t("…") calls in the scripts."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    keys = set(re.findall(r'data-i18n(?:-[a-z-]+)?="([^"]+)"', html))
    for script in SCRIPTS:  # t("a.b"), and keys chosen before the call: t(x ? "a.b" : "a.c")
        keys |= set(re.findall(r'"([a-z_]+\.[a-z_]+(?:\.[a-z_]+)?)"',
                               script.read_text(encoding="utf-8")))
    return keys


def server_ids() -> set[str]:
    """Keys built from ids the server sends (``t(`reason.${id}`)`` and the like)."""
    from bsm_gateway import core

    return ({f"reason.{r}" for r in engine.registry().reasons}
            | {f"report_reason.{r}" for r in REPORT_REASONS}
            | {f"event.{e}" for e in EVENT_MODELS}
            # a violation outside the draft's text names its field (text and the whole
            # message are the draft itself)
            | {f"field.{f}" for f in get_args(Span.model_fields["field"].annotation)
               if f not in ("text", "message")}
            | {f"template.{n}" for n in gateway_i18n.PLATFORM_TEMPLATES}
            | {f"view.{v}" for v in get_args(core.Filter)}
            | {f"state.{s}" for s in get_args(core.State)}
            | {f"{k}.{r}" for k in ("title", "role") for r in ("seller", "buyer", "dispute",
                                                                "operator")}
            | {f"sender.{s}" for s in ("seller", "buyer", "platform")}
            | {f"outcome.{s}" for s in ("submitted", "addressed", "delivered", "bounced")}
            | {f"window.{w}" for w in ("7d", "30d", "90d")}
            | {f"mark.{m}{w}" for m in ("verified", "not_verified", "unsigned")
               for w in ("", ".why")}
            | {f"verdict.{v}" for v in ("approved", "rejected")})


def test_there_is_one_catalog_per_marketplace_language_and_the_script_knows_the_same_list():
    files = sorted(p.stem for p in CATALOGS.glob("*.json"))
    script = (STATIC / "i18n.js").read_text(encoding="utf-8")
    listed = re.search(r"LANGUAGES = \[([^\]]*)\]", script)
    assert listed is not None
    assert files == sorted(gateway_i18n.LANGUAGES)
    assert re.findall(r'"(\w+)"', listed.group(1)) == list(gateway_i18n.LANGUAGES)


def test_every_key_the_page_uses_and_every_server_id_it_names_is_in_english():
    missing = (used_keys() | server_ids()) - set(catalog("en")) - NOT_KEYS
    assert not missing, sorted(missing)


@pytest.mark.parametrize("lang", [lang for lang in gateway_i18n.LANGUAGES if lang != "en"])
def test_each_language_has_every_english_key_with_the_same_placeholders(lang: str):
    english, other = catalog("en"), catalog(lang)
    assert set(other) == set(english), {"missing": sorted(set(english) - set(other)),
                                        "extra": sorted(set(other) - set(english))}
    for key, text in english.items():
        assert other[key].strip(), (lang, key)
        assert set(PLACEHOLDER.findall(other[key])) == set(PLACEHOLDER.findall(text)), (lang, key)


@pytest.mark.parametrize("lang", [lang for lang in gateway_i18n.LANGUAGES if lang != "en"])
def test_no_language_is_english_left_in_place(lang: str):
    """A copied English text is a string nobody translated; only words that are the same in
    both languages (ids, units, "HTML") may repeat."""
    english, other = catalog("en"), catalog(lang)
    same = sorted(k for k, v in english.items() if other[k] == v)
    assert len(same) <= len(english) // 20, same


def test_every_catalog_key_is_used_so_none_rots():
    unused = set(catalog("en")) - used_keys() - server_ids()
    assert not unused, sorted(unused)
