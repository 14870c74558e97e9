"""GPU pinning: a `--device cuda:N` worker runs models and inputs on exactly that GPU.

Skipped on machines without an NVIDIA GPU (CI here has none); run on a GPU host
with `pytest -m gpu`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.integration import models
from tests.integration.conftest import Stack, create_endpoint, register, unique, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU"),
]


def test_torch_runner_keeps_module_and_inputs_on_the_gpu(model_files: dict[str, Path]) -> None:
    from workers.runners.torch import TorchRunner

    runner = TorchRunner(model_files["torch"], "cuda:0")
    assert {p.device for p in runner.module.parameters()} == {torch.device("cuda:0")}
    rows = np.asarray(models.random_rows(64, seed=1), dtype=np.float32)
    models.assert_close(
        runner.predict(rows), models.predict_torch(model_files["torch"], rows.tolist())
    )


def test_xgboost_runner_predicts_on_the_gpu(model_files: dict[str, Path]) -> None:
    from workers.runners.xgboost import XGBoostRunner

    runner = XGBoostRunner(model_files["xgb"], "cuda:0")
    assert '"device":"cuda:0"' in runner.booster.save_config().replace(" ", "")
    rows = np.asarray(models.random_rows(64, seed=2), dtype=np.float32)
    models.assert_close(
        runner.predict(rows), models.predict_xgboost(model_files["xgb"], rows.tolist())
    )


def test_a_cuda_worker_serves_its_variant_on_its_gpu(
    stack: Stack, model_files: dict[str, Path]
) -> None:
    with stack.client() as client:
        model = register(client, unique("mlp"), "torch", model_files["torch"])
        name = unique("gpu")
        create_endpoint(
            client,
            {
                "name": name,
                "variants": [{"name": "a", "model": model["name"], "accelerator": "gpu"}],
            },
        )
    worker = stack.start_worker("--device", "cuda:0", "--variant", f"{name}/a")
    try:
        wait_for(lambda: worker.pid in stack.heartbeat_pids(), timeout_s=60, what="the GPU worker")
        rows = models.random_rows(8, seed=3)
        with stack.client() as client:
            response = client.post(f"/v1/endpoints/{name}/invocations", json={"instances": rows})
        assert response.status_code == 200, response.text
        models.assert_close(
            response.json()["predictions"], models.predict_torch(model_files["torch"], rows)
        )
        assert "on cuda:0" in stack.worker_log(worker)
    finally:
        stack.kill_worker(worker)
