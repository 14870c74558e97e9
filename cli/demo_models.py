"""The demo's two models: built from a fixed seed, saved as the artifacts the demo
uploads, and loaded back here as the reference every answer is compared with.

torch, xgboost and numpy are imported inside the functions that use them, so
`sluice` starts fast where only the API extras are installed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch
    import xgboost

N_FEATURES = 4
SEED = 7
# The worker may run on another device or BLAS; float32 results agree to ~1e-6
# there, so these bounds catch a wrong model or a mixed-up row, not rounding.
RTOL, ATOL = 1e-4, 1e-5


class DemoFailure(Exception):
    """A step saw something other than what the platform promises; the message says what."""


@dataclass
class DemoModels:
    """The saved artifacts, and the same artifacts loaded back here as the reference."""

    xgboost_path: Path
    torch_path: Path
    booster: xgboost.Booster
    module: torch.jit.ScriptModule

    def artifact(self, framework: str) -> Path:
        return self.xgboost_path if framework == "xgboost" else self.torch_path

    def predict(self, framework: str, rows: list[list[float]]) -> np.ndarray:
        """What the model behind `framework` answers for `rows`, called in-process."""
        import numpy as np

        features = np.asarray(rows, dtype=np.float32)
        if framework == "xgboost":
            # binary:logistic → one probability per row, shape (n,).
            return np.asarray(self.booster.inplace_predict(features), dtype=np.float64)
        import torch

        with torch.inference_mode():
            # One row of two logits per instance, shape (n, 2).
            logits = self.module(torch.from_numpy(features))
        return logits.numpy().astype(np.float64)


@contextmanager
def _torchscript_allowed() -> Iterator[None]:
    """torch 2.13 deprecates TorchScript in favour of torch.export, but the platform
    accepts TorchScript artifacts (docs/api.md) and this demo is meant to show one."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=DeprecationWarning)
        yield


def build_xgboost(path: Path, *, seed: int = SEED) -> None:
    """A binary classifier (10 trees, depth 3) trained on 200 random rows, saved as JSON."""
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    features = rng.normal(size=(200, N_FEATURES)).astype(np.float32)
    # A rule the trees can learn, so predictions vary: positive when x0 + x1/2 > x2.
    labels = (features[:, 0] + 0.5 * features[:, 1] - features[:, 2] > 0).astype(np.float32)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "seed": seed}
    booster = xgb.train(params, xgb.DMatrix(features, label=labels), num_boost_round=10)
    booster.save_model(str(path))


def build_torch(path: Path, *, seed: int = SEED) -> None:
    """An MLP 4 → 16 → 2 with weights from a fixed seed, saved as TorchScript."""
    import torch

    # fork_rng keeps the caller's global torch RNG untouched by our fixed seed.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            torch.nn.Linear(N_FEATURES, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)
        )
    with _torchscript_allowed():
        torch.jit.script(model.eval()).save(str(path))


def load_models(*, xgboost_path: Path, torch_path: Path) -> DemoModels:
    """Load the artifacts back from disk: the reference is exactly what was uploaded."""
    import torch
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(str(xgboost_path))
    with _torchscript_allowed():
        module = torch.jit.load(str(torch_path))
    module.eval()
    return DemoModels(
        xgboost_path=xgboost_path, torch_path=torch_path, booster=booster, module=module
    )


def build_models(workdir: Path, *, seed: int = SEED) -> DemoModels:
    xgboost_path, torch_path = workdir / "demo-xgboost.json", workdir / "demo-mlp.pt"
    build_xgboost(xgboost_path, seed=seed)
    build_torch(torch_path, seed=seed)
    return load_models(xgboost_path=xgboost_path, torch_path=torch_path)


def rounded(values: Any) -> Any:
    """Predictions rounded to 4 places for printing; non-numeric input comes back as is."""
    if isinstance(values, list):
        return [rounded(value) for value in values]
    return round(values, 4) if isinstance(values, float) else values


def check_predictions(got: Any, expected: np.ndarray, *, what: str) -> None:
    """DemoFailure unless `got` (from the API) equals `expected` (called directly)."""
    import numpy as np

    try:
        actual = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DemoFailure(f"{what}: predictions {got!r} are not numbers ({exc})") from exc
    if actual.shape != expected.shape:
        raise DemoFailure(
            f"{what}: predictions have shape {actual.shape}, "
            f"the model called directly gives {expected.shape}"
        )
    if not np.allclose(actual, expected, rtol=RTOL, atol=ATOL):
        worst = float(np.max(np.abs(actual - expected)))
        raise DemoFailure(
            f"{what}: predictions {rounded(actual.tolist())} differ from the model called "
            f"directly {rounded(expected.tolist())} (max abs diff {worst:.3g})"
        )
