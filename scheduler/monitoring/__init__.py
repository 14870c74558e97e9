"""Model monitoring: baselines and scheduled checks of captured data (docs/monitoring.md)."""
