"""The contract other teams integrate against: a change to it must be a visible diff."""

import json
from pathlib import Path

from bsm_shared.contract.docs import EVENTS_ON, SCHEMA_DIR, asyncapi, event_schemas, generated_files
from bsm_shared.contract.events import EVENT_MODELS

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "Regenerate with `python -m bsm_shared.contract.docs --write` and review the diff."


def test_every_event_schema_matches_its_committed_snapshot():
    for name, schema in event_schemas().items():
        path = SCHEMA_DIR / name
        assert path.exists(), f"{name} has no snapshot. {REGENERATE}"
        assert json.loads(path.read_text()) == schema, f"{name} changed. {REGENERATE}"


def test_no_snapshot_is_left_for_an_event_that_no_longer_exists():
    assert {p.name for p in SCHEMA_DIR.glob("*.json")} == set(event_schemas())


def test_the_committed_asyncapi_document_is_the_generated_one():
    for path, text in generated_files(ROOT).items():
        assert path.read_text() == text, f"{path.name} is stale. {REGENERATE}"


def test_the_asyncapi_document_lists_every_topic_and_event():
    doc = asyncapi()
    documented = {m for ch in doc["channels"].values() for m in ch["messages"]}
    assert documented == set(EVENT_MODELS)
    assert {ch["address"] for ch in doc["channels"].values()} == {t.value for t in EVENTS_ON}


def test_every_payload_field_is_documented():
    undocumented = [
        f"{model.__name__}.{name}"
        for model in EVENT_MODELS.values()
        for payload in [model.model_fields["data"].annotation]
        for name, field in payload.model_fields.items()
        if not field.description
    ]
    assert undocumented == []
