"""The deployments room: blue/green endpoint updates driven step by step (docs/deployments.md).

`decisions` (pure: plan, step and rollback rules with a clock), `counters` (the
new variants' window from the workers' Redis counters), `store` (all its SQL),
`runner` (the control loop).
"""
