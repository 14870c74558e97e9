"""Model runners, one module per framework, behind one small interface."""

from __future__ import annotations

from pathlib import Path

from workers.runners.base import Runner


def load_runner(framework: str, path: Path, device: str) -> Runner:
    """Load an artifact with its framework's safe loader (never a plain unpickle)."""
    if framework == "torch":
        from workers.runners.torch import TorchRunner

        return TorchRunner(path, device)
    if framework == "xgboost":
        from workers.runners.xgboost import XGBoostRunner

        return XGBoostRunner(path, device)
    if framework == "python":
        from workers.runners.python import PythonRunner

        return PythonRunner(path, device)
    raise ValueError(f"unknown framework {framework!r}")
