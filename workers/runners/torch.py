"""PyTorch models: TorchScript archives, or `torch.export` archives (.pt2).

Both loaders read their own archive formats; neither unpickles arbitrary objects
the way `torch.load` of a pickled module would. Inputs are one host array per
call, copied to the worker's device once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import InvalidInput
from workers.runners.base import NumericRunner

logger = logging.getLogger(__name__)


def _first_linear_width(module: Any) -> int | None:
    """Input width of the model when its first weight is a Linear layer's ([out, in]).

    Lets a wrong feature count be a clear 422 rather than a shape error from inside
    the model. Other first layers (conv, embedding) leave the check to the model.
    """
    for name, param in module.named_parameters():
        if name.endswith("weight") and param.dim() == 2:
            return int(param.shape[1])
        return None
    return None


class TorchRunner(NumericRunner):
    def __init__(self, path: Path, device: str) -> None:
        self.device = torch.device(device)
        try:
            module: Any = torch.jit.load(str(path), map_location=self.device)
        except Exception as script_error:
            try:
                module = torch.export.load(str(path)).module().to(self.device)
            except Exception as export_error:
                raise InvalidInput(
                    f"{path.name} is neither a TorchScript archive ({script_error}) "
                    f"nor a torch.export archive ({export_error})"
                ) from export_error
        if isinstance(module, torch.jit.ScriptModule):
            # An exported program's module refuses .eval(): it is traced in eval mode already.
            module.eval()
        self.module = module
        self.expected_features = _first_linear_width(module)
        logger.info("loaded torch model %s on %s", path.name, self.device)

    def predict_array(self, rows: np.ndarray) -> list[Any]:
        tensor = torch.from_numpy(rows).to(self.device, non_blocking=True)
        with torch.inference_mode():
            output = self.module(tensor)
        if isinstance(output, tuple | list):
            output = output[0]
        result: list[Any] = output.detach().to("cpu").numpy().tolist()
        return result
