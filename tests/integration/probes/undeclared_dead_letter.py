"""Run only by tests/integration/test_run_invariants.py (in a pytest of its own): provokes a dead
letter, and declares it only when BSM_PROBE_DECLARE is set."""

import os


async def test_provokes_a_dead_letter(kafka, prefix, expect):
    if os.environ.get("BSM_PROBE_DECLARE"):
        expect.dead_letter("probe_code", topic="bsm.orders.dlq")
    await kafka.publish(prefix + "bsm.orders.dlq",
                        b'{"error_code": "probe_code", "consumer": "probe"}', "k")
