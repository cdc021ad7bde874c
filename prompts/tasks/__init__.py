"""The generated tasks of `ecommerce-v1`, one module per family."""

from . import behaviour, product, reviews, risk, search, service

GENERATED_TASKS = [*search.TASKS, *service.TASKS, *reviews.TASKS, *product.TASKS, *behaviour.TASKS, *risk.TASKS]
