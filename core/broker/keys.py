"""Every Redis name a Sluiceway stack uses, in one place.

All names start with the stack's namespace (`SLUICEWAY_NAMESPACE`), so several
stacks can share one Redis. For namespace `sluiceway`, endpoint `churn`,
variant `a` and a worker `churn-a-3f9c1e@host1`:

| name | type | what it holds |
| --- | --- | --- |
| `sluiceway.churn.a` | list | the variant's waiting messages of priority 0 (realtime) |
| `sluiceway.churn.a\\x06\\x163` | list | ... of priority 3 (async); `\\x06\\x166` transform |
| `sluiceway:bell:sluiceway.churn.a` | list | tokens idle workers block on (capped at 64) |
| `sluiceway:unacked` | hash | kombu's reservations: delivery tag → `[message, "", queue]` |
| `sluiceway:unacked_index` | zset | kombu's reservations by reserve time (epoch s) |
| `sluiceway:unacked_mutex` | string | kombu's restore lock |
| `sluiceway:worker-leases` | zset | worker id → lease expiry (Redis clock, epoch s) |
| `sluiceway:workers` | hash | worker id → msgpack {device, pid, host, queues} |
| `sluiceway:held:churn-a-3f9c1e@host1` | hash | its reservations: tag → the list it came from |
| `sluiceway:reply:9b1c...` | list | realtime answers for one API process |
| `sluiceway:variant-queues` | set | every live variant queue |
| `sluiceway:metrics:sluiceway.churn.a` | hash | workers' counters for the variant |
| `sluiceway:desired-workers` | hash | queue → workers the scaler wants |
| `sluiceway:scaling-events:sluiceway.churn.a` | list | the variant's latest scaling events |
| `sluiceway:last-arrival` | hash | queue → epoch ms of its last message |
| `sluiceway:transform-done` | list | tokens that wake the transform coordinator |
| `sluiceway:requeued:<job id>` | string | a reconciler's claim on requeueing one job |
| `sluiceway:history:sluiceway.churn.a` | list | the console's sampled points of the variant |
| `sluiceway:delivery-outcomes` | hash | webhook deliveries ended, by outcome |
| `sluiceway.churn.ic.small` | list | inference component `small`'s queue (a variant queue) |
| `sluiceway:component-placements` | hash | queue → its copies and where they run |
| `sluiceway:host-capacity` | hash | host → its capacity and what is free |
| `sluiceway:models:sluiceway.churn.a:<worker>` | hash | multi-model: what a worker holds |
| `sluiceway:model-invocations:sluiceway.churn.a` | hash | multi-model: model → requests, ever |
| `sluiceway:shadow-replies` | list | shadow variants' answers, for the scheduler to compare |
| `sluiceway:shadow-prod:<copy id>` | string | the production answer a shadow copy is compared to |
| `sluiceway:shadow-pairs:churn:s` | list | compared pairs of shadow `s` (newest first, capped) |

The queue lists and the three `unacked*` keys are kombu's Redis transport
layout (core/broker/envelope.py, core/broker/priorities.py); the contract test
(tests/integration/test_broker_contract.py) checks them against kombu itself.
"""

from __future__ import annotations


def queue_name(namespace: str, endpoint: str, variant: str) -> str:
    """The Redis queue of one endpoint variant, e.g. `sluiceway.churn.a`."""
    return f"{namespace}.{endpoint}.{variant}"


def variants_key(namespace: str) -> str:
    """Redis set of every live variant queue; workers subscribe to what it lists."""
    return f"{namespace}:variant-queues"


def reply_key(namespace: str, api_instance: str) -> str:
    """Redis list where workers push realtime answers for one API process."""
    return f"{namespace}:reply:{api_instance}"


def bell_key(namespace: str, queue: str) -> str:
    """A list idle workers block on; producers push a token with each message."""
    return f"{namespace}:bell:{queue}"


def unacked_key(namespace: str) -> str:
    """kombu's hash of reserved, unacknowledged messages: tag → JSON [message, exchange, queue]."""
    return f"{namespace}:unacked"


def unacked_index_key(namespace: str) -> str:
    """kombu's zset of unacknowledged delivery tags, scored by reserve time (epoch s)."""
    return f"{namespace}:unacked_index"


def unacked_mutex_key(namespace: str) -> str:
    """kombu's lock around its periodic restore of unacknowledged messages."""
    return f"{namespace}:unacked_mutex"


def leases_key(namespace: str) -> str:
    """Zset of worker leases: worker id → the Redis time (epoch s) its lease ends."""
    return f"{namespace}:worker-leases"


def workers_key(namespace: str) -> str:
    """Hash worker id → msgpack {device, pid, host, queues}, written with each renewal."""
    return f"{namespace}:workers"


def held_key(namespace: str, worker_id: str) -> str:
    """Hash of one worker's reservations: delivery tag → the list the message came from."""
    return f"{namespace}:held:{worker_id}"


def metrics_key(namespace: str, queue: str) -> str:
    """Hash of counters workers add to per variant (batch sizes, latencies, errors)."""
    return f"{namespace}:metrics:{queue}"


def desired_workers_key(namespace: str) -> str:
    """Hash queue → worker count the scheduler wants for it."""
    return f"{namespace}:desired-workers"


def scaling_events_key(namespace: str, queue: str) -> str:
    """Redis list of a variant queue's latest scaling events, newest first (capped)."""
    return f"{namespace}:scaling-events:{queue}"


def history_key(namespace: str, queue: str) -> str:
    """Redis list of a variant queue's sampled points for the console, oldest first (capped)."""
    return f"{namespace}:history:{queue}"


def delivery_outcomes_key(namespace: str) -> str:
    """Hash outcome (`delivered`, `dead`) → webhook deliveries that ended so, ever (the notifier
    adds; /metrics renders it as sluiceway_webhook_deliveries_total)."""
    return f"{namespace}:delivery-outcomes"


def arrivals_key(namespace: str) -> str:
    """Hash queue → epoch ms of the last message a producer put on it (about once a second)."""
    return f"{namespace}:last-arrival"


def requeue_claim_key(namespace: str, job_id: str) -> str:
    """Set (NX, with a TTL) by the reconciler that requeues a lost job, so only one does."""
    return f"{namespace}:requeued:{job_id}"


# An inference component's queue is a variant queue labelled `ic.<component>`:
# `sluiceway.churn.ic.small`. Names never hold a ".", so the label never collides
# with a variant's, and workers, leases, the reconciler and the metrics need
# nothing new (`sluice worker --variant churn/ic.small` serves it).
COMPONENT_LABEL = "ic."


def component_variant(component: str) -> str:
    """The variant label of an inference component's queue: `small` → `ic.small`."""
    return f"{COMPONENT_LABEL}{component}"


def component_of(variant: str) -> str | None:
    """The component a variant label names (`ic.small` → `small`), None for a variant."""
    return variant[len(COMPONENT_LABEL) :] if variant.startswith(COMPONENT_LABEL) else None


def component_placements_key(namespace: str) -> str:
    """Hash component queue → JSON of its copies and placements, written by the scaler."""
    return f"{namespace}:component-placements"


def host_capacity_key(namespace: str) -> str:
    """Hash host → JSON of its capacity and what is free for component copies (the scaler)."""
    return f"{namespace}:host-capacity"


# Transform jobs for a model (not an endpoint) run on a per-model-version queue
# that every generic worker serves. "_" cannot start an endpoint name, so these
# queues never collide with an endpoint's.
TRANSFORM_POOL = "_transform"


def transform_pool_queue(namespace: str, model: str, version: int) -> str:
    """The transform-pool queue of one model version, e.g. `sluiceway._transform.churn-v3`."""
    return queue_name(namespace, TRANSFORM_POOL, transform_pool_variant(model, version))


def transform_pool_variant(model: str, version: int) -> str:
    return f"{model}-v{version}"


def transform_done_key(namespace: str) -> str:
    """Redis list workers ring when a transform chunk is done, waking the coordinator."""
    return f"{namespace}:transform-done"


def models_loaded_key(namespace: str, queue: str, worker_id: str) -> str:
    """Hash model → "memory_bytes last_used_at" a worker holds of a multi-model variant
    (rewritten whole by that worker, expiring when it stops writing)."""
    return f"{namespace}:models:{queue}:{worker_id}"


def model_invocations_key(namespace: str, queue: str) -> str:
    """Hash model → requests served, ever, of a multi-model variant."""
    return f"{namespace}:model-invocations:{queue}"


def shadow_replies_key(namespace: str) -> str:
    """Redis list where workers push shadow variants' answers (never a caller's reply list)."""
    return f"{namespace}:shadow-replies"


def shadow_production_key(namespace: str, copy_id: str) -> str:
    """The production answer (msgpack) a shadow copy is to be compared with; expires."""
    return f"{namespace}:shadow-prod:{copy_id}"


def shadow_pairs_key(namespace: str, endpoint: str, shadow: str) -> str:
    """Redis list of compared (production, shadow) pairs of one shadow variant, newest first."""
    return f"{namespace}:shadow-pairs:{endpoint}:{shadow}"
