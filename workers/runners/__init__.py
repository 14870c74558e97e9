"""Model runners, one module per framework, behind one small interface."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from workers.runners.base import Runner

if TYPE_CHECKING:
    from workers.runners.host import HandlerHost


def load_runner(
    framework: str, path: Path, device: str, *, handler_host: HandlerHost | None = None
) -> Runner:
    """Load an artifact with its framework's safe loader (never a plain unpickle).

    A python handler loads in `handler_host`'s process when one is given (a
    worker's, so a stuck handler can be stopped), else in this process.
    """
    if framework == "torch":
        from workers.runners.torch import TorchRunner

        return TorchRunner(path, device)
    if framework == "xgboost":
        from workers.runners.xgboost import XGBoostRunner

        return XGBoostRunner(path, device)
    if framework == "python":
        if handler_host is not None:
            from workers.runners.host import HostedPythonRunner

            return HostedPythonRunner(handler_host, path)
        from workers.runners.python import PythonRunner

        return PythonRunner(path, device)
    raise ValueError(f"unknown framework {framework!r}")
