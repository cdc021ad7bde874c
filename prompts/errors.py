"""The one exception family ShopLoRA raises for bad input; the CLI turns it into a message, never a traceback."""


class ShopLoRAError(Exception):
    """Base class: the message names the bad value and says what to do next."""


class DataError(ShopLoRAError):
    """A user's examples (file, dataset or list) cannot be read as ShopLoRA examples."""


class TaskNotFoundError(ShopLoRAError):
    """A task name that no registered suite knows."""
