"""Small real models the integration tests register, and how to call them directly."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np

FEATURES = 4


def tarball(path: Path, files: dict[str, bytes]) -> Path:
    """A .tar.gz at `path` holding `files` (name → bytes): bundles and SageMaker archives."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def handler_bundle(path: Path, source: str) -> Path:
    """A `python` model bundle: `source` as its handler.py."""
    return tarball(path, {"handler.py": source.encode()})


def build_xgboost(path: Path, *, seed: int = 0) -> Path:
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, FEATURES)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] * 0.5 > 0).astype(np.float32)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
        xgb.DMatrix(x, label=y),
        num_boost_round=10,
    )
    booster.save_model(str(path))
    return path


def build_torch(path: Path, *, seed: int = 0, raise_on_negative: bool = False) -> Path:
    import torch

    torch.manual_seed(seed)

    class MLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = torch.nn.Linear(FEATURES, 16)
            self.fc2 = torch.nn.Linear(16, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(torch.relu(self.fc1(x)))

    class Picky(MLP):
        """Raises when any feature is below -1000: a model that fails on some inputs."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if bool((x < -1000).any()):
                raise ValueError("feature below -1000")
            return self.fc2(torch.relu(self.fc1(x)))

    module = Picky() if raise_on_negative else MLP()
    torch.jit.script(module.eval()).save(str(path))
    return path


def build_ratio_torch(path: Path) -> Path:
    """A TorchScript model answering x0 / x1 per row: 0/0 is NaN, 1/0 infinity."""
    import torch

    class Ratio(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, 0] / x[:, 1]

    torch.jit.script(Ratio().eval()).save(str(path))
    return path


def predict_xgboost(path: Path, rows: list[list[float]]) -> list[float]:
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(str(path))
    result: list[float] = booster.inplace_predict(np.asarray(rows, dtype=np.float32)).tolist()
    return result


def predict_torch(path: Path, rows: list[list[float]]) -> list[list[float]]:
    import torch

    module = torch.jit.load(str(path))
    with torch.inference_mode():
        out = module(torch.tensor(rows, dtype=torch.float32))
    result: list[list[float]] = out.tolist()
    return result


def random_rows(n: int, *, seed: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, FEATURES)).round(4).tolist()


def assert_close(got: object, expected: object) -> None:
    """Predictions equal to the directly-called model's, up to float32 rounding."""
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-6)


SLOW_HANDLER = """
import time

import numpy as np


def predict_fn(data, model):
    time.sleep({delay_s})
    return np.asarray(data, dtype=float).sum(axis=1).tolist()
"""


def build_slow_handler(path: Path, *, delay_s: float) -> Path:
    """A `python` bundle that sums each row after sleeping: a model that takes its time."""
    return handler_bundle(path, SLOW_HANDLER.format(delay_s=delay_s))


RECORDER_HANDLER = """
import json
import os
import time

# One answer for the payload as a whole (a dict in, a dict out): not counted
# as one prediction per instance.
whole_payload_output = True


def input_fn(body, content_type):
    return json.loads(body)


def predict_fn(data, model):
    # The handler runs in its worker's handler host, a child of the worker: the
    # worker's pid is the host's parent's.
    worker = os.getppid()
    with open(data["record"], "a") as record:
        record.write(f"{data['id']} {worker}\\n")
    time.sleep(float(data["sleep_s"]))
    return {"id": data["id"], "pid": worker}


def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
"""


def build_recorder_handler(path: Path) -> Path:
    """A `python` bundle that appends `<id> <worker pid>` to the file its request names (one
    line per run), then sleeps the request's `sleep_s`: counts how often a request runs,
    and on which worker."""
    return handler_bundle(path, RECORDER_HANDLER)


def recorded_runs(path: Path) -> list[tuple[str, int]]:
    """(request id, worker pid) of each run a recorder handler wrote to `path`."""
    if not path.exists():
        return []
    return [(line.split()[0], int(line.split()[1])) for line in path.read_text().splitlines()]
