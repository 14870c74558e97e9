"""The python-handler runner unpacks its bundle safely beside other workers of the host."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.integration.models import build_slow_handler
from workers.runners.python import PythonRunner


def test_a_worker_that_loses_the_unpack_race_uses_the_winners_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: two workers of one variant started together both unpacked into
    `<bundle>.staging`, and the second rename failed with "Directory not empty",
    failing the job it was loading the model for."""
    bundle = build_slow_handler(tmp_path / "slow.tar.gz", delay_s=0.0)
    real_extractall = tarfile.TarFile.extractall

    def extract_while_another_worker_finishes(self: tarfile.TarFile, *a: Any, **kw: Any) -> None:
        real_extractall(self, *a, **kw)
        # Meanwhile another worker unpacked the same bundle and moved it into place.
        winner = tmp_path / "winner"
        with tarfile.open(bundle, "r:gz") as other:
            real_extractall(other, winner, filter="data")
        shutil.move(winner, tmp_path / "slow.tar.gz.d")

    monkeypatch.setattr(tarfile.TarFile, "extractall", extract_while_another_worker_finishes)
    runner = PythonRunner(bundle, "cpu")
    assert runner.invoke(b'{"instances": [[1, 2], [3, 4]]}', "application/json", None)[0] == (
        b'{"predictions":[3.0,7.0]}'
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slow.tar.gz", "slow.tar.gz.d"]
