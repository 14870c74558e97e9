"""The broker: everything about how Sluiceway's messages sit in Redis, in one package.

Callers (api/, workers/, scheduler/) import from `core.broker` only; the
modules inside are split by concern, each with its layout worked out in its
docstring:

- `keys` — the name of every Redis key of a stack (a table of all of them);
- `priorities` — mode → kombu priority → list, and the order workers read them;
- `envelope` — the kombu/Celery message format, built and parsed by hand;
- `producer` — enqueue: push to a priority list, ring the queue's bell;
- `scripts` — the Lua scripts: reserve, acknowledge, register, renew, release;
- `reservations` — a worker's reserve and acknowledge calls;
- `leases` / `liveness` — worker leases: the pure rules, and a worker's renewals;
- `recovery` — the sweep of dead workers' reservations, and the stale restore;
- `reads` — backlogs, reservations per queue, live workers, job ids present;
- `models` — multi-model variants: which worker holds which model, requests per model;
- `arrivals` — when each queue last got a message (the scaler's idle clock);
- `connection` — the Redis client and the Celery app, told the same layout.

The layout is kombu's Redis transport's (kombu 5.7): messages stay readable by
kombu's consumer and kombu's restore still works on our reservations;
tests/integration/test_broker_contract.py checks it against kombu itself.
"""

from core.broker.arrivals import ArrivalLog, note_arrival
from core.broker.connection import get_redis, make_celery
from core.broker.envelope import TASK_NAME, build_message, job_id_of, parse_message
from core.broker.keys import (
    COMPONENT_LABEL,
    TRANSFORM_POOL,
    arrivals_key,
    bell_key,
    component_of,
    component_placements_key,
    component_variant,
    delivery_outcomes_key,
    desired_workers_key,
    held_key,
    history_key,
    host_capacity_key,
    leases_key,
    metrics_key,
    queue_name,
    reply_key,
    scaling_events_key,
    shadow_pairs_key,
    shadow_production_key,
    shadow_replies_key,
    transform_done_key,
    transform_pool_queue,
    transform_pool_variant,
    unacked_index_key,
    unacked_key,
    unacked_mutex_key,
    variants_key,
    workers_key,
)
from core.broker.leases import REPLY_TTL_S, new_worker_id, renew_every_s
from core.broker.liveness import WorkerLease
from core.broker.models import (
    HeldModel,
    forget_models,
    read_models,
    refresh_models,
    report_models,
)
from core.broker.priorities import (
    PRIORITY,
    PRIORITY_STEPS,
    priority_list,
    priority_lists,
    pull_order,
)
from core.broker.producer import (
    BELL_DEPTH,
    Outgoing,
    add_pushes,
    enqueue,
    outgoing,
    wake_transform_coordinator,
)
from core.broker.reads import (
    QueueLoad,
    WorkerInfo,
    backlog_async,
    backlogs,
    held_by,
    job_ids_present,
    last_arrivals,
    live_queues,
    live_workers,
    queue_loads,
    reserved_counts,
    workers_per_queue,
)
from core.broker.recovery import (
    SweepReport,
    claim_requeue,
    expire_worker,
    release_worker,
    release_worker_processes,
    restore_stale_reservations,
    sweep,
)
from core.broker.reservations import Reservations

__all__ = [
    "BELL_DEPTH",
    "COMPONENT_LABEL",
    "PRIORITY",
    "PRIORITY_STEPS",
    "REPLY_TTL_S",
    "TASK_NAME",
    "TRANSFORM_POOL",
    "ArrivalLog",
    "HeldModel",
    "Outgoing",
    "QueueLoad",
    "Reservations",
    "SweepReport",
    "WorkerInfo",
    "WorkerLease",
    "add_pushes",
    "arrivals_key",
    "backlog_async",
    "backlogs",
    "bell_key",
    "build_message",
    "claim_requeue",
    "component_of",
    "component_placements_key",
    "component_variant",
    "delivery_outcomes_key",
    "desired_workers_key",
    "enqueue",
    "expire_worker",
    "forget_models",
    "get_redis",
    "held_by",
    "held_key",
    "history_key",
    "host_capacity_key",
    "job_id_of",
    "job_ids_present",
    "last_arrivals",
    "leases_key",
    "live_queues",
    "live_workers",
    "make_celery",
    "metrics_key",
    "new_worker_id",
    "note_arrival",
    "outgoing",
    "parse_message",
    "priority_list",
    "priority_lists",
    "pull_order",
    "queue_loads",
    "queue_name",
    "read_models",
    "refresh_models",
    "release_worker",
    "release_worker_processes",
    "renew_every_s",
    "reply_key",
    "report_models",
    "reserved_counts",
    "restore_stale_reservations",
    "scaling_events_key",
    "shadow_pairs_key",
    "shadow_production_key",
    "shadow_replies_key",
    "sweep",
    "transform_done_key",
    "transform_pool_queue",
    "transform_pool_variant",
    "unacked_index_key",
    "unacked_key",
    "unacked_mutex_key",
    "variants_key",
    "wake_transform_coordinator",
    "workers_key",
    "workers_per_queue",
]
