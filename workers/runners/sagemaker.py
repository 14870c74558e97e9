"""SageMaker training artifacts as they come: a `model.tar.gz`, unpacked and sniffed.

A SageMaker training job leaves its model as `model.tar.gz`. Registering that
file as `xgboost` or `torch` works as is (registration checks it the same way):

- `xgboost`: the tarball holds `xgboost-model` (the built-in algorithm's name)
  or one `*.json` / `*.ubj` file — a Booster in XGBoost's JSON or UBJ format,
  or the legacy binary format where the installed XGBoost still loads it. A
  pickled Booster (older SageMaker XGBoost containers wrote `xgboost-model` as
  a pickle, starting with b"\\x80") is refused, never unpickled.
- `torch`: the tarball holds one TorchScript or `torch.export` archive
  (`model.pt`, `model.pth`, `*.pt2`: zip files) and optionally
  `code/inference.py`, SageMaker's handler. With a handler the model runs as a
  python handler (workers/runners/python.py) whose default `model_fn` loads
  that archive; `code/requirements.txt` is refused (workers install nothing).

The tarball is unpacked once per host next to the cached artifact
(`<file>.d/`), with tarfile's "data" filter so it cannot write outside it.
Every error says what was found: "model.tar.gz holds no saved Booster file
(xgboost-model, *.json, *.ubj; found: ['model.pth', 'code/inference.py'])".
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

from core.errors import InvalidInput

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
XGBOOST_NAMES = ("xgboost-model",)
XGBOOST_SUFFIXES = (".json", ".ubj", ".bst", ".model")
TORCH_SUFFIXES = (".pt", ".pth", ".pt2", ".ts", ".torchscript")
HANDLER = "code/inference.py"
REQUIREMENTS = "code/requirements.txt"
LISTED = 12  # files named in an error message, at most


def is_tarball(path: Path) -> bool:
    """Whether the artifact is a gzip file (a SageMaker `model.tar.gz`)."""
    with path.open("rb") as file:
        return file.read(2) == GZIP_MAGIC


def unpack(path: Path) -> Path:
    """The tarball's folder (`<path>.d`), unpacked on first use; InvalidInput if it will not.

    Workers of one host share the folder: each unpacks apart and the first rename wins.
    """
    folder = path.parent / (path.name + ".d")
    if folder.is_dir():
        return folder
    staging = path.parent / f"{path.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with tarfile.open(path, "r:gz") as bundle:
            bundle.extractall(staging, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise InvalidInput(f"{path.name} is not a valid model.tar.gz: {exc}") from exc
    try:
        staging.rename(folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not folder.is_dir():
            raise
    return folder


def files_in(folder: Path) -> list[str]:
    """Relative paths of the files in an unpacked tarball, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def xgboost_model(path: Path) -> Path:
    """The Booster file inside a SageMaker XGBoost tarball; InvalidInput saying what was found.

    `xgboost-model` first (the built-in algorithm), else the one `*.json`/`*.ubj`/
    `*.bst`/`*.model` file. A pickle is refused by its first byte (0x80).
    """
    folder = unpack(path)
    found = files_in(folder)
    named = [f for f in found if Path(f).name in XGBOOST_NAMES]
    candidates = named or [f for f in found if f.lower().endswith(XGBOOST_SUFFIXES)]
    if len(candidates) != 1:
        what = "no" if not candidates else f"{len(candidates)} candidate"
        raise InvalidInput(
            f"{path.name} holds {what} saved Booster file{'s' if len(candidates) > 1 else ''} "
            f"(xgboost-model, *.json, *.ubj; found: {found[:LISTED]})"
        )
    model = folder / candidates[0]
    head = model.read_bytes()[:8]
    if head[:1] == b"\x80":
        raise InvalidInput(
            f"{candidates[0]} in {path.name} is a Python pickle (starts with {head!r}), "
            "which Sluiceway never loads; save the Booster with "
            "booster.save_model('xgboost-model.json') and package that"
        )
    return model


def torch_model(path: Path) -> Path:
    """The one TorchScript or torch.export archive in a SageMaker PyTorch tarball.

    InvalidInput when there is none or several (naming them), and when the
    tarball carries `code/requirements.txt`.
    """
    folder = unpack(path)
    found = files_in(folder)
    if REQUIREMENTS in found:
        raise InvalidInput(
            f"{path.name} carries {REQUIREMENTS}: workers do not install packages at load "
            "time; install them into the worker image and remove the file from the tarball"
        )
    candidates = [
        f
        for f in found
        if f.lower().endswith(TORCH_SUFFIXES) and (folder / f).read_bytes()[:4] == ZIP_MAGIC
    ]
    if len(candidates) != 1:
        what = "no" if not candidates else f"{len(candidates)}"
        raise InvalidInput(
            f"{path.name} holds {what} TorchScript or torch.export archive"
            f"{'s' if len(candidates) != 1 else ''} (*.pt, *.pth, *.pt2 zip files; "
            f"found: {found[:LISTED]})"
        )
    return folder / candidates[0]


def has_handler(path: Path) -> bool:
    """Whether an unpacked torch tarball brings SageMaker's `code/inference.py`."""
    return (unpack(path) / HANDLER).is_file()


def torch_model_fn(path: Path, device: str, model_dir: str) -> Any:
    """SageMaker PyTorch's default `model_fn`: the tarball's one archive, loaded by the
    torch runner's loader (TorchScript or torch.export; never `torch.load` of a pickle)."""
    from workers.runners.torch import TorchRunner

    return TorchRunner(torch_model(path), device)


def torch_predict(data: Any, model: Any) -> Any:
    """SageMaker PyTorch's default `predict_fn`: the rows as one float32 tensor through
    the model, one prediction per row."""
    import numpy as np
    import torch

    from workers.runners.torch import TorchRunner

    rows = np.asarray(data, dtype=np.float32)
    if isinstance(model, TorchRunner):
        return model.predict_array(rows)
    with torch.inference_mode():
        return model(torch.from_numpy(rows)).detach().cpu().numpy()
