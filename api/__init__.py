"""The HTTP API (FastAPI): routing, validation, job creation, reading state.

Never imports torch or xgboost and never runs a model.
"""
