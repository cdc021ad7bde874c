"""risk family (being written)."""

TASKS: list = []
