"""The console's components panel and endpoints table, rendered from the API's own shapes."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from api.console import capacity
from api.console.panels import loaded_first
from api.console.render import templates
from api.schemas import (
    AsyncPublic,
    ComponentPublic,
    ComputeSpec,
    CopiesPublic,
    DeploymentPublic,
    DeploymentStep,
    EndpointPublic,
    GpuPublic,
    HostPublic,
    ModelLoadPublic,
    PlacementPublic,
    VariantPublic,
)

NOW = dt.datetime(2026, 11, 30, 2, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("mb", "text"), [(256, "256 MB"), (1024, "1 GB"), (1536, "1.5 GB"), (15890, "16 GB")]
)
def test_memory(mb: int, text: str) -> None:
    assert capacity.memory(mb) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [(None, "-"), (812, "812 B"), (42188, "41.2 KB"), (3670016, "3.5 MB"), (1288490189, "1.2 GB")],
)
def test_size(n: int | None, text: str) -> None:
    assert capacity.size(n) == text


def test_per_copy_names_cores_memory_and_gpus() -> None:
    assert capacity.per_copy(ComputeSpec(cpu_cores=0.5, memory_mb=256)) == "0.5 cores · 256 MB"
    assert capacity.per_copy(ComputeSpec(cpu_cores=1, memory_mb=2048, gpus=2)) == (
        "1 core · 2 GB · 2 GPUs"
    )
    assert capacity.per_copy(ComputeSpec(gpu_memory_mb=4096)) == "1 core · 1 GB · 4 GB of a GPU"


def test_placement_and_host_gpus() -> None:
    cpu = PlacementPublic(host="box1", cpu_cores=1.0, memory_mb=512)
    assert capacity.placement(cpu) == "box1: 1 core, 512 MB"
    shared = PlacementPublic(host="g", cpu_cores=2, memory_mb=1024, gpu=1, gpu_memory_mb=4096)
    assert capacity.placement(shared) == "g: 2 cores, 1 GB, GPU 1, 4 GB GPU memory"
    whole = PlacementPublic(host="g", cpu_cores=2, memory_mb=1024, gpu=0, gpus=[0, 1])
    assert capacity.placement(whole) == "g: 2 cores, 1 GB, GPU 0,1"
    host = HostPublic(
        name="g",
        cpu_cores=8,
        memory_mb=65536,
        gpus=[GpuPublic(index=0, memory_mb=81920, free_memory_mb=30720)],
        free_cpu_cores=6,
        free_memory_mb=60000,
    )
    assert capacity.host_gpus(host) == "0: 30 GB free of 80 GB"
    assert capacity.host_gpus(host.model_copy(update={"gpus": []})) == "-"


def component(name: str, **fields: object) -> ComponentPublic:
    base: dict[str, object] = {
        "name": name,
        "endpoint": "shop",
        "model": "ranker",
        "model_version": 3,
        "framework": "torch",
        "status": "in_service",
        "compute": ComputeSpec(cpu_cores=1, memory_mb=1024),
        "copies": CopiesPublic(min=1, max=2, current=1, desired=1),
        "scaling": {},
        "batching": {"max_batch_size": 8, "max_delay_ms": 5},
        "priority": 0,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return ComponentPublic.model_validate(base | fields)


def shop() -> EndpointPublic:
    return EndpointPublic(
        name="shop",
        status="in_service",
        variants=[],
        async_=AsyncPublic(output_prefix="s3://r/shop/", success_topic=None, error_topic=None),
        components=[
            component(
                "rank",
                copies=CopiesPublic(min=1, max=2, current=1, desired=2),
                placements=[PlacementPublic(host="box1", cpu_cores=1.0, memory_mb=1024)],
                pending_reason="box1: needs 1 cores, 0 free",
                backlog=12,
            ),
            component("fraud", copies=CopiesPublic(min=0, max=1, current=0, desired=0)),
        ],
        hosts=[
            HostPublic(
                name="box1", cpu_cores=2, memory_mb=15890, free_cpu_cores=0, free_memory_mb=13842
            )
        ],
        created_at=NOW,
        updated_at=NOW,
    )


def render(template: str, **context: object) -> str:
    return templates.env.get_template(template).render(refresh_ms=5000, **context)


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def row(html: str, row_id: str) -> str:
    found = re.search(rf'<tr[^>]*id="{re.escape(row_id)}".*?</tr>', html, re.S)
    assert found, f"no row {row_id}"
    return text(found.group(0))


def test_components_panel_shows_copies_placements_pending_and_host_room() -> None:
    html = render("panels/components.html", endpoint=shop())
    assert row(html, "component-rank") == (
        "rank in_service ranker v3 1 core · 1 GB 1 2 1..2 12 box1: 1 core, 1 GB "
        "box1: needs 1 cores, 0 free"
    )
    fraud = "fraud in_service ranker v3 1 core · 1 GB 0 0 0..1 0 no copy"
    assert row(html, "component-fraud") == fraud
    assert row(html, "host-box1") == "box1 2 0 16 GB 14 GB -"


def test_endpoints_table_lists_components_with_their_copies() -> None:
    empty = shop().model_copy(update={"name": "new", "components": []})
    html = render("partials/endpoints_table.html", endpoints=[shop(), empty])
    rank = "shop in_service rank component ranker v3 - 12 1 2 pending"
    assert row(html, "row-shop-ic-rank") == rank
    assert row(html, "row-shop-ic-fraud") == "fraud component ranker v3 - 0 0 0"
    assert "new in_service nothing deployed yet" in text(html)


def loaded(model: str, workers: list[str], last_used_s: float | None) -> ModelLoadPublic:
    return ModelLoadPublic(
        model=model,
        variant="all",
        size_bytes=42188,
        memory_bytes=3670016 if workers else None,
        loaded_on=workers,
        last_used_at=None if last_used_s is None else NOW - dt.timedelta(seconds=last_used_s),
        invocations=7 if workers else 0,
    )


def test_models_loaded_lists_loaded_ones_first_most_recently_used_first() -> None:
    models = [loaded("a", [], None), loaded("b", ["w1"], 50), loaded("c", ["w1", "w2"], 5)]
    assert [m.model for m in loaded_first(models)] == ["c", "b", "a"]
    html = render(
        "panels/models_loaded.html",
        ctx={
            "endpoint": shop(),
            "prefixes": ["s3://models/cities/"],
            "models": loaded_first(models)[:2],
            "listed": 3,
            "truncated": False,
        },
    )
    assert row(html, "model-all-c").startswith("c all 41.2 KB 3.5 MB w1 , w2 ")
    assert row(html, "model-all-c").endswith(" ago 7")
    assert "model-all-a" not in html and "Showing 2 of 3;" in text(html)


def test_deployment_timeline_shows_each_step_and_the_rollback_reason() -> None:
    deployment = DeploymentPublic(
        deployment_id="dep1",
        endpoint="shop",
        strategy="linear",
        state="rolled_back",
        from_config_version=1,
        to_config_version=2,
        new_traffic_percent=0.0,
        steps=[
            DeploymentStep(
                percent=25,
                started_at=NOW,
                finished_at=NOW,
                outcome="passed",
                requests=1200,
                errors=0,
                p99_ms=8.0,
            ),
            DeploymentStep(
                percent=50,
                started_at=NOW,
                finished_at=NOW,
                outcome="rolled_back",
                requests=40,
                errors=9,
                p99_ms=None,
            ),
        ],
        reason="error rate 22.5% > rollback_on.error_rate_percent 5% at 50%",
        deployment={"strategy": "linear"},
        created_at=NOW,
        finished_at=NOW,
    )
    html = render(
        "panels/deployments.html",
        ctx={"endpoint": shop(), "deployments": [deployment], "more": 2},
    )
    assert row(html, "deployment-dep1-step-1").endswith("1,200 0 8 ms")
    assert row(html, "deployment-dep1-step-2").startswith("2 50 % rolled_back")
    assert row(html, "deployment-dep1-step-2").endswith("40 9 -")
    assert "Rolled back: error rate 22.5% &gt; rollback_on" in html
    assert "config v1 → v2" in text(html) and "2 older deployment(s)" in text(html)


def test_variants_show_a_deployments_new_variant_and_each_ones_traffic() -> None:
    def variant(name: str, **fields: object) -> VariantPublic:
        base: dict[str, object] = {
            "name": name,
            "model": "churn",
            "model_version": 1,
            "framework": "xgboost",
            "weight": 1.0,
            "accelerator": "cpu",
            "min_workers": 0,
            "max_workers": 1,
            "target_backlog_per_worker": 4,
            "batching": {"max_batch_size": 8, "max_delay_ms": 5},
            "backlog": 0,
            "reserved": 0,
            "workers": {"current": 1, "desired": 1},
        }
        return VariantPublic.model_validate(base | fields)

    endpoint = shop().model_copy(
        update={
            "variants": [
                variant("a", traffic_percent=75.0),
                variant("a", key="a~2", role="new", config_version=2, traffic_percent=25.0),
            ]
        }
    )
    html = render("panels/variants.html", endpoint=endpoint)
    rows = [text(r) for r in re.findall(r"<tr>.*?</tr>", html, re.S)[1:]]
    assert rows[0].startswith("a config v1 churn v1 xgboost cpu 1 75 % ")
    assert rows[1].startswith("a new config v2 churn v1 xgboost cpu 1 25 % ")
