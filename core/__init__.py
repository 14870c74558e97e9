"""Sluiceway's shared kernel: settings, database, object store, the broker (queues in Redis),
codecs, errors.

Imported by every process; imports none of api/, workers/, scheduler/ or cli/.
"""
