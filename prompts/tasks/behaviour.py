"""behaviour family (being written)."""

TASKS: list = []
