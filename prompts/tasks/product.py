"""product family (being written)."""

TASKS: list = []
