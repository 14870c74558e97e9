"""Device selection: CUDA requests fall back to the CPU, and say so, where there is no GPU."""

from __future__ import annotations

import logging

import pytest
import torch

from workers.main import resolve_device


def test_cpu_stays_cpu() -> None:
    assert resolve_device("cpu") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("requested", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_falls_back_to_cpu_and_says_so(
    requested: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert resolve_device(requested) == "cpu"
    assert "no CUDA GPU is available" in caplog.text
