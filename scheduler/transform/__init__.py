"""The batch-transform coordinator: lists input prefixes, cuts chunks, dispatches, assembles.

`coordinator.py` is the loop, `plan.py` cuts objects into chunks (pure),
`dispatch.py` turns chunks into invocations, `output.py` assembles part objects.
"""
