"""The shadows room: pairs shadow variants' answers with production's (comparer.py)."""
