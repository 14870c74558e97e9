"""The `sluice` command: runs Sluiceway's processes and talks to its HTTP API."""
