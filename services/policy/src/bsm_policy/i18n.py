"""Explanations and remedies in the sender's language (C11), from a data file of translations
written by people (``data/messages.json``: code → language → [explanation, remedy]); nothing is
machine-translated at run time. Languages: en, es, fr, it, pt, de; any other locale gets English.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

LANGUAGES = ("en", "es", "fr", "it", "pt", "de")


@lru_cache(maxsize=1)
def catalog() -> dict[str, dict[str, list[str]]]:
    raw = resources.files("bsm_policy").joinpath("data/messages.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(raw).items() if not k.startswith("_")}


def language_of(locale: str | None) -> str:
    lang = (locale or "en").replace("_", "-").split("-")[0].lower()
    return lang if lang in LANGUAGES else "en"


class _Params(dict):  # a placeholder a finding has no value for is left empty, never fails
    def __missing__(self, key: str) -> str:
        return ""


def explain(code: str, locale: str | None, params: dict[str, Any] | None = None) -> tuple[str, str]:
    """(explanation, remedy) for ``code`` in the language of ``locale``."""
    entry = catalog()[code]
    detail, remedy = entry.get(language_of(locale)) or entry["en"]
    p = _Params({k: str(v) for k, v in (params or {}).items()})
    return detail.format_map(p), remedy.format_map(p)
