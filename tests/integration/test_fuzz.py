"""Schemathesis fuzzes every operation of /openapi.json: no input makes a 5xx, and every
response matches the documented schema, status codes and content types.

Runs the `schemathesis` command against the shared stack, bounded in examples
(its pytest plugin does not load under this pytest version). A failure prints
schemathesis's report, with a curl line that reproduces each finding.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def test_no_input_makes_a_5xx_and_responses_match_the_schema(stack: Stack, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{stack.api_url}/openapi.json",
            "--checks",
            "all",
            # Schema-valid bodies may still name things that do not exist (a
            # model, an S3 object): those are rightly refused with 4xx.
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "25",
            "--seed",
            "7",
            "--workers",
            "2",
            "--report-dir",
            str(tmp_path),
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-2000:]
