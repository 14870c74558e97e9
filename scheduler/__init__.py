"""The scheduler: long-running control loops, one package per loop.

- `scaling/`    worker counts per variant from queue depth (policy, loop, actuators)
- `webhooks/`   outbox events delivered to subscriptions, with retries
- `transform/`  batch-transform jobs: list, cut, dispatch, assemble
- `reconcile/`  jobs whose queue message was lost are requeued or failed
- `loop.py`     the one runner every loop uses: a thread, a tick, a stop event
- `main.py`     `sluice scheduler`: starts them all

Talks to Redis, SQL, the object store and the process backend; never runs a model.
"""
