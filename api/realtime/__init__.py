"""The realtime hot path: no SQL per request.

`lane.py` serves realtime invocations as a plain ASGI handler, `routing.py`
caches each endpoint's routes per process, `backpressure.py` bounds backlogs,
`producer.py` coalesces enqueues into one Redis pipeline, `replies.py` hands
workers' answers to the waiting callers.
"""
