"""The scheduler: long-running control loops (worker supervision now; scaling, webhooks later).

Talks to Redis, SQL, the object store and the process backend; never runs a model.
"""
