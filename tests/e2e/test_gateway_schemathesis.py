"""Property-based tests of the running gateway from its own OpenAPI document (schemathesis's
command line: its pytest plugin does not run under this project's pytest 9): whatever a
client sends, no answer is a server error."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import gateway_support as g


def test_schemathesis_finds_no_server_error_in_any_operation_of_the_gateway(env):
    cli = Path(sys.executable).with_name("schemathesis")
    if not cli.exists():
        pytest.fail("schemathesis is not installed: pip install schemathesis")
    token = g.auth(env, "schemathesis-seller", "seller")["Authorization"]
    run = subprocess.run(
        [str(cli), "run", f"{env['BSM_GATEWAY_URL']}/openapi.json",
         "--checks", "not_a_server_error", "-H", f"Authorization: {token}",
         "--phases", "coverage,fuzzing", "--max-examples", "15", "--seed", "6",
         "--no-color"],
        capture_output=True, text=True, timeout=540,
    )
    summary = run.stdout[-3000:]
    assert run.returncode == 0, summary
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert tested and int(tested.group(1)) >= 30, summary
    assert re.search(r"(\d+) generated, \1 passed", run.stdout), summary
