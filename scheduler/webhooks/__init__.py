"""Webhook delivery: the outbox's events fanned out to subscriptions and sent with retries.

`notifier.py` is the loop, `delivery_store.py` all its SQL, `retry_policy.py`
the pure retry decisions and `webhook_sender.py` the HTTP I/O.
"""
