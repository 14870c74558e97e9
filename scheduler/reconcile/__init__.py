"""The reconciler: accepted jobs whose queue message was lost are requeued, or failed."""
