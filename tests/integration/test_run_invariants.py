"""The run invariants themselves (tests/invariants.py): a run that passes every test still fails
when a dead letter appeared that no test declared — and passes once the test declares it."""

import os
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).parent / "probes" / "undeclared_dead_letter.py"
ROOT = Path(__file__).resolve().parents[2]


def run_probe(declare: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BSM_PROBE_DECLARE": "1" if declare else ""}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(PROBE)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_a_run_fails_on_a_dead_letter_no_test_declared_and_passes_when_declared():
    undeclared = run_probe(declare=False)
    assert undeclared.returncode == 1, undeclared.stdout[-2000:]
    assert "1 passed" in undeclared.stdout
    assert "undeclared dead letter" in undeclared.stdout and "probe_code" in undeclared.stdout
    declared = run_probe(declare=True)
    assert declared.returncode == 0, declared.stdout[-2000:]
    assert "run invariants: no undeclared ERROR" in declared.stdout
