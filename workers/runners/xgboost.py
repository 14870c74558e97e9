"""XGBoost models: a saved Booster in JSON or UBJ (XGBoost's own formats, no pickle)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from core.config import get_settings
from core.errors import InvalidInput
from workers.runners.base import NumericRunner

logger = logging.getLogger(__name__)


class XGBoostRunner(NumericRunner):
    def __init__(self, path: Path, device: str) -> None:
        self.booster = xgb.Booster()
        try:
            self.booster.load_model(bytearray(path.read_bytes()))
        except xgb.core.XGBoostError as exc:
            raise InvalidInput(f"{path.name} is not a saved XGBoost Booster: {exc}") from exc
        # "cuda:N" runs prediction on that GPU; "cpu" on the host.
        self.booster.set_param({"device": device, "nthread": get_settings().compute_threads})
        self.expected_features = self.booster.num_features() or None
        logger.info("loaded xgboost model %s on %s", path.name, device)

    def predict_array(self, rows: np.ndarray) -> list[Any]:
        result: list[Any] = self.booster.inplace_predict(rows).tolist()
        return result
