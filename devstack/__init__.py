"""Everything on one machine: the real local servers and the process supervisor.

`servers.py` starts SeaweedFS (S3) and private `redis-server`s on free loopback
ports; `supervisor.py` is `sluice up`'s stack (migrations, servers, API and
scheduler children, restarts). The tests, the benchmarks and `sluice up` share
both. Nothing here is needed where compose or Kubernetes run the processes.
"""
