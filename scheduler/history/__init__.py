"""The history sampler: every variant's rates, latency and gauges into Redis for the console."""
