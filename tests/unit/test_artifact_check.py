"""The registration checker (api/services/artifact_check.py): warm, bounded, replaceable."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from api.services.artifact_check import Checker
from core.errors import InvalidInput


@pytest.fixture(scope="module")
def booster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("artifacts") / "model.json"
    data = xgb.DMatrix(np.arange(40, dtype=np.float32).reshape(10, 4), label=np.arange(10))
    xgb.train({"max_depth": 2}, data, num_boost_round=2).save_model(path)
    return path


def test_one_warm_process_answers_every_check(booster: Path, tmp_path: Path) -> None:
    """Regression: each registration paid ~2 s of framework imports in a new process."""
    broken = tmp_path / "broken.json"
    broken.write_text('{"learner": 1}')
    checker = Checker()
    try:
        checker.check("xgboost", str(booster))
        first = checker.pid
        with pytest.raises(InvalidInput, match="does not load as xgboost"):
            checker.check("xgboost", str(broken))
        checker.check("xgboost", str(booster))
        assert first is not None and checker.pid == first
    finally:
        checker.close()
    assert checker.pid is None


def _stand_in(script: str) -> tuple[str, ...]:
    return (sys.executable, "-c", script)


def test_a_check_past_its_timeout_is_a_422_and_the_next_gets_a_new_checker() -> None:
    checker = Checker(
        timeout_s=0.5, command=_stand_in("import sys, time; sys.stdin.readline(); time.sleep(60)")
    )
    try:
        with pytest.raises(InvalidInput, match="did not load within"):
            checker.check("torch", "/nowhere.pt")
        assert checker.pid is None
    finally:
        checker.close()


def test_a_file_that_crashes_the_loader_is_a_422_naming_it() -> None:
    checker = Checker(command=_stand_in("import os, sys; sys.stdin.readline(); os._exit(139)"))
    with pytest.raises(InvalidInput, match="crashed the loader"):
        checker.check("torch", "/nowhere.pt")
    assert checker.pid is None
