"""service family (being written)."""

TASKS: list = []
