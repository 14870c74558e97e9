"""docs/python.md's examples, run: every ```python block, in order, in one namespace.

Against a stack of its own (API, a worker, a scheduler for the transform). The
page's literals are pointed at it: the API URL, the model file `churn.json`,
the names `churn` and `churn-xgb` (made unique) and the bucket `s3://data/`
(which gets an input object first). Blocks fenced as ```py are shown, not run
(pandas is not installed here).
"""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.servers import SeaweedServer
from tests.integration.conftest import REPO, Stack, private_stack, unique
from tests.integration.webhook_parts import Scheduler

pytestmark = pytest.mark.integration

PAGE = REPO / "docs" / "python.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


@pytest.fixture(scope="module")
def docs_stack(s3: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with private_stack(
        s3,
        tmp_path_factory.mktemp("python-docs"),
        SLUICEWAY_SCALER_BACKEND="none",
        SLUICEWAY_TRANSFORM_INTERVAL_S="0.2",
    ) as stack:
        scheduler = Scheduler(stack)
        try:
            stack.start_worker()
            scheduler.start()
            stack.wait_workers(1)
            yield stack
        finally:
            scheduler.stop()


def test_every_example_of_docs_python_md_runs(
    docs_stack: Stack,
    s3: SeaweedServer,
    model_files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocks = BLOCK.findall(PAGE.read_text())
    assert len(blocks) >= 8, "the page lost its examples"
    bucket = unique("docs-data")
    s3.client().make_bucket(bucket)
    rows = b"0.1,0.2,0.3,0.4\n1.0,-1.0,0.5,0.0\n"
    s3.client().put_object(bucket, "in/part-0.csv", io.BytesIO(rows), len(rows))
    shutil.copy(model_files["xgb"], tmp_path / "churn.json")
    monkeypatch.chdir(tmp_path)
    endpoint, model = unique("churn"), unique("churn-xgb")
    replacements = {
        "http://127.0.0.1:8000": docs_stack.api_url,
        '"churn-xgb"': f'"{model}"',
        '"churn"': f'"{endpoint}"',
        "s3://data/": f"s3://{bucket}/",
    }
    namespace: dict[str, object] = {"__name__": "docs_python_md"}
    for number, block in enumerate(blocks, start=1):
        code = block
        for literal, value in replacements.items():
            code = code.replace(literal, value)
        try:
            exec(compile(code, f"docs/python.md block {number}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"docs/python.md block {number} failed:\n{block}") from exc
    done = namespace["done"]
    assert getattr(done, "status", None) == "succeeded"
