"""What the routes call: one service module per resource (SQL, object store, queue).

Routes validate and call one function here; nothing here knows about HTTP
beyond raising the project's errors (core/errors.py), which become problem+json.
"""
