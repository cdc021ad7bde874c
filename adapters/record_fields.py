"""Reading and writing the fields of a record's JSON (adapters.record): each field read is type-checked, so a damaged
shoplora.json is an error naming the field instead of a wrong value found later; optional fields are written only
when set.
"""

from __future__ import annotations

from typing import Any

from prompts import ShopLoRAError


class RecordError(ShopLoRAError):
    """A shoplora.json that is not a record: a field missing or of the wrong type."""


FIX = "the file was edited or damaged: restore a previous version of the folder, or save or train it again"

_REQUIRED = object()
_TYPE_NAMES = {
    int: "a whole number",
    float: "a number",
    str: "a text",
    bool: "true or false",
    list: "a list",
    dict: "a JSON object",
}


class FieldReader:
    """Reads one JSON object field by field, checking each type; what is left unread is the object's `extra`."""

    def __init__(self, data: Any, where: str):
        if not isinstance(data, dict):
            raise RecordError(f"{where} must be a JSON object, got {_shown(data)}; {FIX}")
        self.rest, self.where = dict(data), where

    def take(self, key: str, kind: type, default: Any = _REQUIRED) -> Any:
        """`key`'s value, checked to be a `kind` (None passes where the default is None), or `default` if missing."""
        if key not in self.rest:
            if default is _REQUIRED:
                raise RecordError(f"{self.where} has no {key!r}; {FIX}")
            return default
        value = self.rest.pop(key)
        if value is None and default is None:
            return None
        if not _fits(value, kind):
            raise RecordError(f"{self.where}: {key!r} must be {_TYPE_NAMES[kind]}, got {_shown(value)}; {FIX}")
        return float(value) if kind is float else value

    def list_of(self, key: str, kind: type) -> list:
        """`key`'s list (empty when missing), every item a `kind`."""
        values = self.take(key, list, [])
        if not all(_fits(v, kind) for v in values):
            raise RecordError(
                f"{self.where}: {key!r} must be a list, each item {_TYPE_NAMES[kind]}, got {_shown(values)}; {FIX}"
            )
        return [float(v) for v in values] if kind is float else list(values)

    def parsed(self, key: str, parse: Any) -> Any:
        """`key`'s JSON object made into a typed value by `parse` (TaskSpec.from_dict, ...), its errors naming `key`."""
        return self._parse(key, parse, self.take(key, dict))

    def optional(self, key: str, parse: Any) -> Any:
        """Like `parsed`, None when the key is missing or null."""
        value = self.take(key, dict, None)
        return None if value is None else self._parse(key, parse, value)

    def _parse(self, key: str, parse: Any, value: dict) -> Any:
        try:
            return parse(value)
        except (ShopLoRAError, TypeError, ValueError) as error:
            raise RecordError(f"{self.where}: {key!r} is not valid ({error}); {FIX}") from None


def put(out: dict, key: str, value: Any) -> None:
    """Optional fields are written only when set: a record written without them reads back the same."""
    if value is not None:
        out[key] = value


def _fits(value: Any, kind: type) -> bool:
    """Whether a JSON value is a `kind`: a whole number passes as a number, true and false are no numbers."""
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, kind) or (kind is float and isinstance(value, int))


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{text[:40]}... ({type(value).__name__})" if len(text) > 40 else f"{text} ({type(value).__name__})"
