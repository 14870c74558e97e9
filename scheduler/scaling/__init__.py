"""The scaler: worker counts per variant from queue depth.

`metrics.py` reads queue state and variant bounds, `policy.py` decides (pure,
with a clock), `scaler.py` is the loop, `actuators/` carry decisions out
(local processes or Kubernetes Deployments) — the only side effects.
"""
