"""Artifact sniffing: a file that cannot be the named framework's artifact is refused at once.

Real artifacts are built in a temporary folder with the frameworks themselves.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from api.services.registry import sniff_artifact
from core.errors import InvalidInput
from tests.integration import models


def _xgboost_ubj(folder: Path) -> Path:
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(str(models.build_xgboost(folder / "model.json")))
    path = folder / "model.ubj"
    booster.save_model(str(path))
    return path


def _torch_export(folder: Path) -> Path:
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(models.FEATURES, 2)).eval()
    program = torch.export.export(model, (torch.zeros(1, models.FEATURES),))
    path = folder / "model.pt2"
    torch.export.save(program, str(path))
    return path


def _handler_bundle(folder: Path) -> Path:
    path = folder / "bundle.tar.gz"
    with tarfile.open(path, "w:gz") as bundle:
        source = b"def predict_fn(data, model):\n    return data\n"
        info = tarfile.TarInfo("handler.py")
        info.size = len(source)
        bundle.addfile(info, io.BytesIO(source))
    return path


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "torch-script": lambda folder: models.build_torch(folder / "mlp.pt"),
    "torch-export": _torch_export,
    "xgboost-json": lambda folder: models.build_xgboost(folder / "model.json"),
    "xgboost-ubj": _xgboost_ubj,
    "python-bundle": _handler_bundle,
}
FRAMEWORK_OF = {
    "torch-script": "torch",
    "torch-export": "torch",
    "xgboost-json": "xgboost",
    "xgboost-ubj": "xgboost",
    "python-bundle": "python",
}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The first bytes of each real artifact, as the registry reads them."""
    folder = tmp_path_factory.mktemp("artifacts")
    return {kind: build(folder).read_bytes()[:16] for kind, build in BUILDERS.items()}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_a_real_artifact_passes_for_its_framework(artifacts: dict[str, bytes], kind: str) -> None:
    sniff_artifact(FRAMEWORK_OF[kind], artifacts[kind])


@pytest.mark.parametrize(
    ("kind", "framework"),
    [
        (kind, framework)
        for kind in sorted(BUILDERS)
        for framework in ("torch", "xgboost", "python")
        if FRAMEWORK_OF[kind] != framework
        # A .tar.gz may be a SageMaker model.tar.gz of torch or xgboost: its load check
        # says what it holds (tests/unit/test_sagemaker_artifacts.py).
        and not (kind == "python-bundle" and framework in ("torch", "xgboost"))
    ],
)
def test_a_real_artifact_fails_for_another_framework(
    artifacts: dict[str, bytes], kind: str, framework: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        sniff_artifact(framework, artifacts[kind])
    assert caught.value.status == 422
    assert "the file is not" in caught.value.detail
    assert repr(artifacts[kind][:8]) in caught.value.detail


@pytest.mark.parametrize(
    ("framework", "head", "expected"),
    [
        ("torch", b"\x80\x02}q\x00(X\x10", "TorchScript or torch.export archive"),
        ("torch", b"", "TorchScript or torch.export archive"),
        ("xgboost", b"binf\x00\x00\x00\x00", "saved Booster in JSON or UBJ"),
        ("xgboost", b"[1, 2, 3]", "saved Booster in JSON or UBJ"),
        ("python", b"PK\x03\x04", ".tar.gz handler bundle"),
        ("python", b"def model_fn(", ".tar.gz handler bundle"),
        ("python", b"BZh91AY&SY", ".tar.gz handler bundle"),
    ],
    ids=[
        "torch-pickle",
        "torch-empty",
        "xgb-old-binary",
        "xgb-array",
        "py-zip",
        "py-source",
        "bz2",
    ],
)
def test_wrong_magic_is_refused_naming_what_was_expected(
    framework: str, head: bytes, expected: str
) -> None:
    with pytest.raises(InvalidInput, match=expected):
        sniff_artifact(framework, head)


def test_xgboost_json_may_start_with_whitespace() -> None:
    sniff_artifact("xgboost", b'\n  {"learner": ')


def test_a_plain_gzip_passes_the_python_sniff() -> None:
    """Sniffing reads magic bytes only; the bundle's contents are checked when it loads."""
    sniff_artifact("python", gzip.compress(b"not a tar")[:16])
