"""The one exception family ShopLoRA raises for bad input, and the one way entry points turn errors into a message
and an exit code, never a traceback."""

import os
import sys
from typing import Callable


class ShopLoRAError(Exception):
    """Base class: the message names the bad value and says what to do next."""


class DataError(ShopLoRAError):
    """A user's examples (file, dataset or list) cannot be read as ShopLoRA examples."""


class TaskNotFoundError(ShopLoRAError):
    """A task name that no registered suite knows."""


def exit_code(action: Callable[[], object]) -> int:
    """Run `action`; 0 when it returns, else one line on stderr and the exit code: 2 for bad input, 130 for Ctrl-C,
    1 for a bug (the traceback only with SHOPLORA_DEBUG=1)."""
    try:
        action()
    except ShopLoRAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `shoplora tasks list | head` closes the pipe early; that is not an error
        return 0
    except Exception as error:  # a bug, not bad input: one line, and the traceback only when asked for
        if os.environ.get("SHOPLORA_DEBUG"):
            raise
        print(
            f"error: unexpected {type(error).__name__}: {error}\n(run again with SHOPLORA_DEBUG=1 for the "
            "traceback, and please report it)",
            file=sys.stderr,
        )
        return 1
    return 0
