"""The record's HTTP answers (timeline, F1, F2, F3) are defined once (issue 12: the gateway's
and the metrics service's timeline models had drifted apart)."""

from __future__ import annotations

from bsm_gateway import metrics_client, models
from bsm_metrics import app as metrics_app
from bsm_shared import record_api


def test_the_metrics_service_answers_with_the_shared_models() -> None:
    for name in ("Timeline", "TimelineEntry", "ResponseTimes", "Quota", "ReportStats"):
        assert getattr(metrics_app, name) is getattr(record_api, name), name


def test_the_gateway_reads_the_same_models_adding_only_its_verdict() -> None:
    assert metrics_client.ResponseTimes is record_api.ResponseTimes
    assert issubclass(models.Timeline, record_api.Timeline)
    added = set(models.VerifiedEntry.model_fields) - set(record_api.TimelineEntry.model_fields)
    assert added == {"verification"}
    assert models.Timeline.model_fields.keys() == record_api.Timeline.model_fields.keys()
