"""Read a user's examples from JSONL, CSV, a `datasets.Dataset` or a list of dicts, with errors that say the fix.

Example: `load_examples("returns.jsonl", labels=["return_item", "cancel_order"])`, or for other column names
`load_examples("tickets.csv", columns={"input": "message", "output": "intent"})`.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .errors import DataError
from .spec import Example

MAX_CHARS = 4000  # per field: longer rows do not fit the model's context with the prompt around them
MIN_EXAMPLES = 2
QUOTED_CHARS = 40  # of a file's own text in an error message: enough to find the row, never the file's content


def _cut(text: Any) -> str:
    """A file's text for an error message: its first QUOTED_CHARS characters."""
    text = str(text)
    return text if len(text) <= QUOTED_CHARS else text[:QUOTED_CHARS] + "..."


def load_examples(
    source: Any,
    *,
    columns: dict[str, str] | None = None,
    labels: Sequence[str] | None = None,
    max_chars: int = MAX_CHARS,
) -> list[Example]:
    """Examples from `source`: a .jsonl/.json-lines or .csv path, a `datasets.Dataset`, or a list of dicts/Examples.

    `columns` maps ShopLoRA's names to yours (`{"input": "text", "output": "label"}`); `labels`, when given, is the
    closed label set every output must belong to. Raises `DataError` naming the file, line and fix.
    """
    columns = {"input": "input", "output": "output", **(columns or {})}
    unknown = set(columns) - {"input", "output"}
    if unknown:
        raise DataError(f"columns can only map 'input' and 'output', not {sorted(unknown)}")
    if isinstance(source, (str, Path)) and any(
        (Path(source) / marker).is_file()  # datasets.save_to_disk
        for marker in ("state.json", "dataset_dict.json")
    ):
        source = _load_from_disk(Path(source))
    if isinstance(source, (str, Path)):
        where, rows = str(source), read_rows(Path(source))
    elif hasattr(source, "column_names") and hasattr(source, "__iter__"):  # a datasets.Dataset, without importing it
        where = "the dataset"
        rows = ((f"row {i + 1} of the dataset", dict(row)) for i, row in enumerate(source))
    elif isinstance(source, dict):  # iterating it would read its keys as examples
        keys = ", ".join(repr(_cut(key)) for key in list(source)[:3]) + (", ..." if len(source) > 3 else "")
        raise DataError(
            f"examples is one dict (keys {keys or 'none'}), not a list of them; pass a list of "
            "{'input': ..., 'output': ...} dicts (one example: [{...}]; a dict of columns: "
            "datasets.Dataset.from_dict(...))"
        )
    elif isinstance(source, Iterable) and not isinstance(source, (bytes, bytearray)):
        where = "the examples"
        rows = ((f"example {i + 1}", _as_dict(row, i + 1)) for i, row in enumerate(source))
    else:
        raise DataError(
            f"cannot read examples from a {type(source).__name__}; pass a JSONL/CSV path, a "
            "datasets.Dataset or a list of {'input': ..., 'output': ...} dicts"
        )
    allowed = set(labels) if labels is not None else None
    examples = [_example(_from_chat(row, place, columns), place, columns, allowed, max_chars) for place, row in rows]
    if not examples:
        raise DataError(
            f"{where} holds no examples; add at least {MIN_EXAMPLES} rows with "
            f"'{columns['input']}' and '{columns['output']}'"
        )
    if len(examples) < MIN_EXAMPLES:
        raise DataError(
            f"{where} holds a single example; adaptation needs at least {MIN_EXAMPLES} (8 or more work far better)"
        )
    return examples


def _load_from_disk(path: Path) -> Any:
    from datasets import Dataset, load_from_disk

    loaded = load_from_disk(str(path))
    if not isinstance(loaded, Dataset):
        raise DataError(
            f"{path} is a DatasetDict with splits {', '.join(loaded)}; pass one split's folder, e.g. "
            f"{path / next(iter(loaded))}"
        )
    return loaded


# Chat-format rows (TRL / OpenAI `messages`, LLaMA-Factory's ShareGPT `conversations`): one system turn at most, then
# one user message and the assistant's answer, which become an example's input and output.
CHAT_KEYS = {"messages": ("role", "content"), "conversations": ("from", "value")}
ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "system": "system"}


def _from_chat(row: dict, place: str, columns: dict[str, str]) -> dict:
    """A chat-format row as {input, output, system}; any other row unchanged."""
    key = next((k for k in CHAT_KEYS if k in row and columns["input"] not in row), None)
    if key is None:
        return row
    role_key, text_key = CHAT_KEYS[key]
    turns = row[key]
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        raise DataError(f"{place}: '{key}' must be a list of {{'{role_key}': ..., '{text_key}': ...}} objects")
    system = [row["system"]] if isinstance(row.get("system"), str) and row["system"].strip() else []
    said = []
    for turn in turns:
        role = ROLES.get(str(turn.get(role_key, "")).lower())
        if role is None:
            raise DataError(
                f"{place}: a turn's {role_key} is {_cut(turn.get(role_key))!r}; use user, assistant or system"
            )
        text = _text(turn.get(text_key))
        (system if role == "system" else said).append(text if role == "system" else (role, text))
    if [role for role, _ in said] != ["user", "assistant"]:
        shape = " -> ".join(role for role, _ in said) or "no user or assistant turn"
        raise DataError(
            f"{place}: a chat example must be one user message and the assistant's answer (after an "
            f"optional system turn), found {shape}; split longer conversations into one example per "
            "answer"
        )
    return {columns["input"]: said[0][1], columns["output"]: said[1][1], "system": "\n".join(system)}


def _text(content: Any) -> str:
    """A turn's text; OpenAI-style content parts ([{"type": "text", "text": ...}]) are joined."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def chat_system_prompt(source: Any) -> str | None:
    """The system prompt every chat-format row of `source` (a file path) shares, without ShopLoRA's own label-list
    line; None when the rows are not chat-format or their system prompts differ. Used as the instruction when none
    is given."""
    if not isinstance(source, (str, Path)) or not Path(source).is_file():
        return None
    prompts = set()
    for place, row in read_rows(Path(source)):
        if not any(key in row for key in CHAT_KEYS):
            return None
        prompts.add(_from_chat(row, place, {"input": "input", "output": "output"})["system"].strip())
    found = prompts.pop() if len(prompts) == 1 else ""
    return found.split("\nAnswer with one label:")[0].split("\nAnswer with JSON only.")[0] or None


def load_inputs(path: str | Path, *, column: str = "input", max_chars: int = MAX_CHARS) -> list[str]:
    """The `column` values of a JSONL/CSV file: inputs to predict (other columns, e.g. output, are ignored)."""
    inputs = [_field(row, column, place, "input", max_chars) for place, row in read_rows(Path(path))]
    if not inputs:
        raise DataError(f"{path} holds no inputs; add rows with an '{column}' field")
    return inputs


def infer_labels(examples: Sequence[Example]) -> tuple[str, ...]:
    """The label set of classify examples, in order of first appearance."""
    return tuple(dict.fromkeys(e.output for e in examples))


def _as_dict(row: Any, line: int) -> dict:
    if isinstance(row, Example):
        return row.to_dict()
    if isinstance(row, dict):
        return row
    raise DataError(f"example {line} is a {type(row).__name__}; each example must be a dict with 'input' and 'output'")


def read_rows(path: Path) -> Iterator[tuple[str, dict]]:
    """(place, row) pairs of a JSONL, JSON-array or CSV file; `place` ("FILE, line N") is for error messages."""
    if not path.exists():
        raise DataError(f"no such file: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a directory; pass a .jsonl or .csv file")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".ndjson", ".csv"):
        raise DataError(f"{path}: unknown file type {suffix!r}; use .jsonl (one JSON object a line) or .csv")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # a BOM from spreadsheet exports is fine
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError(f"{path} is not UTF-8 text (line {line}, byte {error.start}); re-save it as UTF-8") from None
    if not text.strip():
        raise DataError(f"{path} is empty; add at least {MIN_EXAMPLES} examples")
    if suffix == ".csv":
        return _read_csv(path, text)
    if suffix == ".json" and text.lstrip().startswith("["):
        return _read_json_array(path, text)
    return _read_jsonl(path, text)


def _read_json_array(path: Path, text: str) -> Iterator[tuple[str, dict]]:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}, line {error.lineno}: bad JSON ({error.msg}, column {error.colno})") from None
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise DataError(f"{path}, item {number}: expected a JSON object, got {type(row).__name__}")
        yield f"{path}, item {number}", row


def _read_jsonl(path: Path, text: str) -> Iterator[tuple[str, dict]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{path}, line {number}: bad JSON ({error.msg}, column {error.colno}); each line must be "
                'one object like {"input": "...", "output": "..."}'
            ) from None
        if not isinstance(row, dict):
            raise DataError(
                f"{path}, line {number}: expected a JSON object like "
                '{"input": "...", "output": "..."}, got ' + type(row).__name__
            )
        yield f"{path}, line {number}", row


def _read_csv(path: Path, text: str) -> Iterator[tuple[str, dict]]:
    reader = csv.DictReader(io.StringIO(text))
    try:
        for row in reader:
            if None in row:
                raise DataError(
                    f"{path}, line {reader.line_num}: more values than header columns; quote fields that contain commas"
                )
            yield f"{path}, line {reader.line_num}", row
    except csv.Error as error:
        raise DataError(f"{path}, line {reader.line_num}: bad CSV ({error})") from None


def _field(row: dict, name: str, place: str, role: str, max_chars: int) -> str:
    if name not in row:
        found = ", ".join(_cut(key) for key in list(row)[:5]) + (", ..." if len(row) > 5 else "") if row else "none"
        raise DataError(f"{place}: no '{name}' field (fields: {found}); rename it or pass columns={{'{role}': ...}}")
    value = row[name]
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)  # structured answers (extraction) are kept as JSON text
    elif value is None:
        value = ""
    value = str(value).strip()
    if not value:
        raise DataError(f"{place}: '{name}' is empty; every example needs a non-empty {role}")
    if len(value) > max_chars:
        raise DataError(
            f"{place}: '{name}' has {len(value)} characters, over the limit of {max_chars}; shorten it "
            "or split it into several examples"
        )
    return value


def _example(row: dict, place: str, columns: dict[str, str], allowed: set[str] | None, max_chars: int) -> Example:
    example = Example(
        _field(row, columns["input"], place, "input", max_chars),
        _field(row, columns["output"], place, "output", max_chars),
    )
    if allowed is not None and example.output not in allowed:
        shown = ", ".join(sorted(allowed)[:20]) + (f" and {len(allowed) - 20} more" if len(allowed) > 20 else "")
        raise DataError(
            f"{place}: output {_cut(example.output)!r} is not one of the labels ({shown}); fix the row or add the label"
        )
    return example
