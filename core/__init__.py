"""Sluiceway's shared kernel: settings, database, object store, queue protocol, codecs, errors.

Imported by every process; imports none of api/, workers/, scheduler/ or cli/.
"""
