"""Multi-model variants: spec validation, target-model resolution, byte-bounded LRU accounting,
and the worker's cache (loads, hits, ETag reloads, evictions, single-flight) on a local store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from api.realtime.routing import VariantRoute
from api.schemas import DEFAULT_MODEL_MEMORY_MB, VariantCreate
from core.errors import BadRequest, InvalidInput, NotFound
from core.multi_model import check_target_model, is_multi_model, key_of, target_ref
from core.protocol import ModelRef
from core.storage import ObjectInfo, S3Location
from workers.model_budget import ByteLru, TooLarge
from workers.multi_model import MB, MultiModelCache

PREFIX = "s3://models/cities/"

# --- the spec -------------------------------------------------------------------


def test_multi_model_variant_defaults_its_memory_budget() -> None:
    spec = VariantCreate.model_validate(
        {"name": "a", "multi_model": {"prefix": "s3://models/cities", "framework": "xgboost"}}
    )
    assert spec.multi_model is not None
    assert spec.multi_model.prefix == PREFIX  # a folder: `/` added
    assert spec.model_memory_mb == DEFAULT_MODEL_MEMORY_MB


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "exactly one of model or multi_model"),
        (
            {"model": "m", "multi_model": {"prefix": PREFIX, "framework": "xgboost"}},
            "exactly one of model or multi_model",
        ),
        (
            {"multi_model": {"prefix": PREFIX, "framework": "xgboost"}, "model_version": 2},
            "model_version goes with model",
        ),
        ({"model": "m", "model_memory_mb": 512}, "model_memory_mb goes with multi_model"),
        ({"multi_model": {"prefix": "http://x/", "framework": "xgboost"}}, "prefix"),
        ({"multi_model": {"prefix": PREFIX, "framework": "python"}}, "framework"),
        (
            {"multi_model": {"prefix": PREFIX, "framework": "xgboost"}, "model_memory_mb": 0},
            "model_memory_mb",
        ),
    ],
)
def test_bad_multi_model_specs_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        VariantCreate.model_validate({"name": "a", **fields})
    assert message in str(exc.value)


# --- the target model -------------------------------------------------------------


def test_target_ref_names_the_object_under_the_prefix() -> None:
    ref = target_ref(prefix=PREFIX, framework="xgboost", key="eu/paris.json")
    assert ref.artifact_uri == "s3://models/cities/eu/paris.json"
    assert is_multi_model(ref) and key_of(ref) == "eu/paris.json"
    assert not is_multi_model(ModelRef("churn", 3, "xgboost", "s3://m/churn.json"))


@pytest.mark.parametrize("key", [None, "", "eu/", "/abs.json", "../other.json", "a/../b", "x\0y"])
def test_bad_target_models_are_400(key: str | None) -> None:
    with pytest.raises(BadRequest):
        check_target_model(key, prefix=PREFIX)


def test_variant_route_resolves_the_header_only_on_multi_model_variants() -> None:
    one = VariantRoute("a", 1.0, ModelRef("churn", 3, "xgboost", "s3://m/c.json"), "q")
    assert one.target("ignored.json") is one.model
    many = VariantRoute(
        "b",
        1.0,
        target_ref(prefix=PREFIX, framework="xgboost", key=""),
        "q",
        multi_model_prefix=PREFIX,
    )
    assert many.target("chicago.json").artifact_uri == PREFIX + "chicago.json"
    with pytest.raises(BadRequest, match="X-Target-Model"):
        many.target(None)


# --- byte-bounded LRU ---------------------------------------------------------------


def test_lru_evicts_the_least_recently_used_until_the_new_entry_fits() -> None:
    """The module docstring's example: 100 MB holding a 40, b 30, c 20; d of 25 evicts a."""
    lru = ByteLru(100)
    for key, size in (("a", 40), ("b", 30), ("c", 20)):
        lru.add(key, size)
    assert lru.victims(25) == ["a"]
    lru.touch("a")  # now b is the oldest
    assert lru.victims(25) == ["b"]
    assert lru.victims(60) == ["b", "c"]
    assert lru.victims(10) == []


def test_lru_refuses_an_entry_larger_than_the_budget_naming_both_sizes() -> None:
    lru = ByteLru(2 * MB)
    lru.add("a", MB)
    with pytest.raises(TooLarge) as exc:
        lru.victims(3 * MB)
    assert "3.0 MB" in str(exc.value) and "2.0 MB" in str(exc.value)
    assert lru.keys() == ["a"]  # nothing evicted for it


def test_lru_keeps_the_entry_being_replaced_out_of_the_count() -> None:
    lru = ByteLru(100)
    lru.add("a", 60)
    lru.add("b", 30)
    assert lru.victims(50, keep="a") == []  # a's own 60 MB do not count
    assert lru.victims(80, keep="a") == ["b"]  # and a is never chosen
    lru.add("a", 50)
    assert lru.used_bytes == 80


# --- the worker's cache, on an in-memory store and a real XGBoost loader -----------------


class MemoryStore:
    """An object store in a dict (unit tests have no network); counts reads."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.reads = 0
        self.gate: threading.Event | None = None

    def put(self, key: str, data: bytes) -> None:
        version = len(self.objects) + self.reads + 1
        self.objects[key] = (data, f"etag-{key}-{version}-{len(data)}")

    def stat(self, location: S3Location) -> ObjectInfo:
        if location.key not in self.objects:
            raise NotFound(f"no object {location.key}")
        data, etag = self.objects[location.key]
        return ObjectInfo(size=len(data), content_type="application/json", etag=etag)

    def iter_chunks(self, location: S3Location) -> Iterator[bytes]:
        if self.gate is not None:
            self.gate.wait(5)
        self.reads += 1
        yield self.objects[location.key][0]


def _booster(value: float) -> bytes:
    """A one-tree XGBoost model predicting about `value` for any row (saved as JSON)."""
    import numpy as np
    import xgboost as xgb

    rows = np.zeros((8, 2))
    booster = xgb.train(
        {"max_depth": 1, "base_score": value, "eta": 1.0},
        xgb.DMatrix(rows, label=np.full(8, value)),
        num_boost_round=1,
    )
    return bytes(booster.save_raw("json"))


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def _cache(store: MemoryStore, tmp_path: Path, *, rss: list[int] | None = None) -> MultiModelCache:
    readings = iter(rss) if rss is not None else None
    return MultiModelCache(
        store=store,  # type: ignore[arg-type]
        cache_dir=tmp_path,
        device="cpu",
        disk_budget_bytes=10 * MB,
        rss=(lambda: next(readings)) if readings is not None else (lambda: 0),
    )


def _ref(key: str) -> ModelRef:
    return target_ref(prefix="s3://models/p/", framework="xgboost", key=key)


def _predict(runner: Any) -> float:
    import numpy as np

    return float(runner.predict(np.zeros((1, 2), dtype=np.float32))[0])


def test_loads_once_then_hits_and_reloads_a_replaced_object(
    store: MemoryStore, tmp_path: Path
) -> None:
    store.put("p/a.json", _booster(1.0))
    cache = _cache(store, tmp_path)
    first = cache.get("q", _ref("a.json"))
    cache.new_batch()
    assert cache.get("q", _ref("a.json")) is first
    assert pytest.approx(_predict(first), abs=1e-3) == 1.0
    store.put("p/a.json", _booster(5.0))  # replaced: a new ETag
    cache.new_batch()
    fresh = cache.get("q", _ref("a.json"))
    assert fresh is not first
    assert pytest.approx(_predict(fresh), abs=1e-3) == 5.0
    counters = cache.take_counters("q")
    assert counters == {
        "model_misses": 2.0,
        "model_loads": 2.0,
        "model_hits": 1.0,
        "model_load_seconds_sum": pytest.approx(counters["model_load_seconds_sum"]),
    }
    report = cache.take_report("q")
    assert report is not None and report[1] == {"a.json": 3}
    assert list(report[0]) == ["a.json"]


def _big_booster(rounds: int) -> bytes:
    """A 16-feature, depth-6 XGBoost model: about 3.8 KB per round in memory (UBJ)."""
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(rounds)
    rows = rng.normal(size=(2000, 16))
    booster = xgb.train(
        {"max_depth": 6, "nthread": 1},
        xgb.DMatrix(rows, label=rows[:, 0] + rng.normal(size=2000)),
        num_boost_round=rounds,
    )
    return bytes(booster.save_raw("json"))


def test_memory_budget_evicts_least_recently_used(store: MemoryStore, tmp_path: Path) -> None:
    model = _big_booster(100)  # ~380 KB loaded: a budget of 1 MB holds two
    for key in ("a", "b", "c"):
        store.put(f"p/{key}.json", model)
    cache = _cache(store, tmp_path)
    cache.set_budget("q", 1)
    cache.get("q", _ref("a.json"))
    cache.get("q", _ref("b.json"))
    cache.get("q", _ref("a.json"))  # a is now the most recent
    cache.get("q", _ref("c.json"))  # evicts b
    models = cache.variants["q"]
    assert sorted(models.loaded) == ["a.json", "c.json"]
    assert 0 < models.memory.used_bytes <= MB
    assert models.loaded["a.json"].memory_bytes < len(model)  # measured, not the file's size
    assert cache.take_counters("q")["model_evictions"] == 1.0


def test_framework_measures_torch_parameters_and_knows_when_it_cannot(tmp_path: Path) -> None:
    import torch

    from workers.multi_model import framework_bytes
    from workers.runners.torch import TorchRunner

    path = tmp_path / "linear.pt"
    torch.jit.script(torch.nn.Linear(4, 2)).save(str(path))
    assert framework_bytes(TorchRunner(path, "cpu")) == (4 * 2 + 2) * 4  # float32 weights, bias

    class Opaque:
        pass

    assert framework_bytes(Opaque()) is None  # type: ignore[arg-type]  # RSS growth then


def test_a_model_larger_than_the_budget_is_422_naming_both_sizes(
    store: MemoryStore, tmp_path: Path
) -> None:
    store.put("p/big.json", _big_booster(300))  # ~1.1 MB loaded
    store.put("p/ok.json", _booster(2.0))
    cache = _cache(store, tmp_path)
    cache.set_budget("q", 1)
    with pytest.raises(InvalidInput, match=r"'big\.json' (is|needs) 1\.\d MB.*1\.0 MB"):
        cache.get("q", _ref("big.json"))
    assert pytest.approx(_predict(cache.get("q", _ref("ok.json"))), abs=1e-3) == 2.0


def test_unknown_and_broken_models(store: MemoryStore, tmp_path: Path) -> None:
    store.put("p/broken.json", b"{not a model")
    cache = _cache(store, tmp_path)
    with pytest.raises(NotFound, match=r"no model 'nope\.json'"):
        cache.get("q", _ref("nope.json"))
    with pytest.raises(InvalidInput, match=r"'broken\.json' will not load"):
        cache.get("q", _ref("broken.json"))


def test_concurrent_requests_for_a_cold_model_load_it_once(
    store: MemoryStore, tmp_path: Path
) -> None:
    store.put("p/a.json", _booster(1.0))
    store.gate = threading.Event()  # hold the download until every thread asks
    cache = _cache(store, tmp_path)
    runners: list[Any] = []
    threads = [
        threading.Thread(target=lambda: runners.append(cache.get("q", _ref("a.json"))))
        for _ in range(20)
    ]
    for thread in threads:
        thread.start()
    store.gate.set()
    for thread in threads:
        thread.join(10)
    assert len(runners) == 20 and len({id(r) for r in runners}) == 1
    assert store.reads == 1
    counters = cache.take_counters("q")
    assert counters["model_loads"] == 1.0 and counters["model_hits"] == 19.0


def test_disk_cache_stays_within_its_budget(store: MemoryStore, tmp_path: Path) -> None:
    for key in ("a", "b", "c"):
        store.put(f"p/{key}.json", _booster(1.0))
    size = len(store.objects["p/a.json"][0])
    cache = MultiModelCache(
        store=store,  # type: ignore[arg-type]
        cache_dir=tmp_path,
        device="cpu",
        disk_budget_bytes=2 * size,
        rss=lambda: 0,
    )
    for key in ("a", "b", "c"):
        cache.get("q", _ref(f"{key}.json"))
    files = [p for p in (tmp_path / "multi-model").rglob("*.json")]
    assert len(files) == 2
    assert cache.disk.used_bytes <= 2 * size


# --- model-affine routing: the rule -------------------------------------------------


def test_affinity_takes_mine_and_unheld_leaves_young_others_and_steals_old() -> None:
    """The worked example of core/broker/affinity.py: A holds m1, B holds m2, t = 100 ms."""
    from core.broker.affinity import Candidate, choose

    window = [
        Candidate("m2", 90),
        Candidate("m1", 91),
        Candidate("m3", 92),
        Candidate("m2", 20),
        Candidate("m1", 95),
    ]
    taken, left = choose(
        window, mine={"m1"}, elsewhere={"m2"}, now_ms=100, steal_after_ms=50, want=10
    )
    assert taken == [1, 2, 3, 4] and left == 1
    # B, holding m2, takes its own and what nobody holds; m1's are A's while young
    taken, left = choose(
        window, mine={"m2"}, elsewhere={"m1"}, now_ms=100, steal_after_ms=50, want=10
    )
    assert taken == [0, 2, 3] and left == 2


@pytest.mark.parametrize(
    ("want", "expected"),
    [(1, [1]), (2, [1, 2]), (0, [])],
)
def test_affinity_takes_at_most_what_it_wants_oldest_first(want: int, expected: list[int]) -> None:
    from core.broker.affinity import Candidate, choose

    window = [Candidate("x", 99), Candidate("mine", 1), Candidate(None, None), Candidate("mine", 2)]
    taken, _ = choose(
        window, mine={"mine"}, elsewhere={"x"}, now_ms=100, steal_after_ms=50, want=want
    )
    assert taken == expected


def test_affinity_with_no_other_holders_takes_everything_in_order() -> None:
    from core.broker.affinity import Candidate, choose

    window = [Candidate(f"m{i}", 100) for i in range(5)]
    assert choose(window, mine=(), elsewhere=(), now_ms=100, steal_after_ms=50, want=5) == (
        [0, 1, 2, 3, 4],
        0,
    )


def test_a_reply_without_a_cache_outcome_is_the_reply_it_always_was() -> None:
    """One-model variants' replies keep their old wire form (an API of the previous
    version reads them); a multi-model reply carries hit or miss."""
    from core.protocol import Reply

    plain = Reply(job_id="j", ok=True).to_wire()
    assert "model_cache" not in plain
    assert Reply.from_wire(plain).model_cache is None
    assert Reply.from_wire(
        Reply(job_id="j", ok=True, model_cache="miss").to_wire()
    ).model_cache == ("miss")


def test_a_variant_no_longer_served_has_its_models_closed(
    store: MemoryStore, tmp_path: Path
) -> None:
    store.put("p/a.json", _booster(1.0))
    cache = _cache(store, tmp_path)
    cache.set_budget("q", 64)
    cache.set_budget("other", 64)
    cache.get("q", _ref("a.json"))
    cache.get("other", _ref("a.json"))
    cache.retain({"other"})
    assert "q" not in cache.variants and not cache.is_multi_model("q")
    assert cache.held_tags("other") and cache.held_tags("q") == []


def test_a_pulls_etags_are_checked_together_and_remembered_for_the_pull(
    store: MemoryStore, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store.put("p/a.json", _booster(1.0))
    store.put("p/b.json", _booster(2.0))
    cache = _cache(store, tmp_path)
    with ThreadPoolExecutor(4) as pool:
        cache.check_all([_ref("a.json"), _ref("b.json"), _ref("gone.json")], pool)
    assert set(cache._etags) == {"s3://models/p/a.json", "s3://models/p/b.json"}
    with pytest.raises(NotFound):  # an object the check could not see fails in `get`
        cache.get("q", _ref("gone.json"))
