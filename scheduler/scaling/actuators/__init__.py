"""Actuators: the scheduler's only side effects on the world (processes, Deployments)."""
