"""reviews family (being written)."""

TASKS: list = []
