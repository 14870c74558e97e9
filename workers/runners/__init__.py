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
    worker's, so a stuck handler can be stopped), else in this process. A
    SageMaker `model.tar.gz` registered as `torch` or `xgboost` is unpacked and
    its model found (workers/runners/sagemaker.py); a torch one with
    `code/inference.py` runs as a python handler.
    """
    from workers.runners import sagemaker

    tarball = framework in ("torch", "xgboost") and sagemaker.is_tarball(path)
    if framework == "torch":
        from workers.runners.torch import TorchRunner

        if not tarball:
            return TorchRunner(path, device)
        model = sagemaker.torch_model(path)
        if not sagemaker.has_handler(path):
            return TorchRunner(model, device)
    if framework == "xgboost":
        from workers.runners.xgboost import XGBoostRunner

        return XGBoostRunner(sagemaker.xgboost_model(path) if tarball else path, device)
    if framework in ("python", "torch"):  # torch here: a model.tar.gz with code/inference.py
        if handler_host is not None:
            from workers.runners.host import HostedPythonRunner

            return HostedPythonRunner(handler_host, path, framework=framework)
        from workers.runners.python import PythonRunner

        return PythonRunner(path, device, framework=framework)
    raise ValueError(f"unknown framework {framework!r}")
