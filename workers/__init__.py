"""Workers: the Celery app, model loading and running. The only place that imports torch/xgboost."""
