"""The examples the Teach tab adapts on: its ready-made example sets, the rows of its table, and the rows of an
uploaded file, checked as `adapt` checks them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompts import Example, ShopLoRAError, load_examples, suite
from prompts.suite import Task

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"  # the repository's example files
MAX_TABLE_ROWS = 2000  # examples the Teach table takes from a file: more is a job for `shoplora adapt`


@dataclass(frozen=True)
class ExampleSet:
    """An example dataset the Teach tab fills in: a file of examples/ with its task."""

    title: str
    name: str
    instruction: str
    labels: tuple[str, ...]
    file: str


def _held_out_spec(task: str) -> tuple[str, tuple[str, ...]]:
    spec = suite.get_task(task).spec
    return spec.instruction, spec.labels


EXAMPLE_SETS = {  # held-out scenarios: meta-training never saw these labels
    "returns": ExampleSet(
        "Returns & refunds",
        "acme-returns",
        "Classify the customer's message.",
        ("refund_status", "return_item", "damaged_item", "where_is_my_order"),
        "refunds.jsonl",
    ),
    "petshop": ExampleSet(
        "Pet-shop intents", "petshop-intents", *_held_out_spec("service-intent-petshop"), "petshop.jsonl"
    ),
    "reviews": ExampleSet(
        "Furniture review aspects",
        "furniture-aspects",
        *_held_out_spec("reviews-aspect-furniture"),
        "review_aspects.jsonl",
    ),
}


def table_examples(table: Any) -> list[dict]:
    """The table's non-empty (input, output) rows."""
    rows = table.values.tolist() if hasattr(table, "to_numpy") else (table or [])  # type="array": a list
    return [
        {"input": str(row[0] or "").strip(), "output": str(row[1] or "").strip()}
        for row in rows
        if len(row) >= 2 and any(str(cell or "").strip() for cell in row[:2])
    ]


def teach_rows(table: Any, upload: Path | None) -> Any:
    """The examples to adapt on: the table's non-empty rows, or a checked upload's path (see serve.uploads); both at
    once is refused rather than one silently winning."""
    examples = table_examples(table)
    if upload and examples:
        raise ShopLoRAError(
            f"examples both in the table ({len(examples)} rows) and in the file {upload.name}: clear "
            "the table, or leave out the file (uploading in the page puts its rows in the table)"
        )
    if upload:
        return upload
    if not examples:
        raise ShopLoRAError("no examples: type some rows in the table (input, output) or upload a JSONL/CSV file")
    return examples


def file_rows(path: Path, shown_name: str, labels: list[str] | None = None) -> list[Example]:
    """The examples of a JSONL/CSV file, checked as `adapt` checks them; errors name `shown_name`, not the server's
    copy."""
    try:
        examples = load_examples(path, labels=labels or None)
    except ShopLoRAError as error:
        raise ShopLoRAError(str(error).replace(str(path), shown_name)) from None
    if len(examples) > MAX_TABLE_ROWS:
        raise ShopLoRAError(
            f"{shown_name} has {len(examples)} examples, over the lab's {MAX_TABLE_ROWS}; adapt from "
            f"the command line: shoplora adapt {shown_name} --instruction ..."
        )
    return examples


def example_rows(task: Task, k: int) -> list[list[str]]:
    """k (input, output) rows of the task's training examples taking every label in turn, so that each label has an
    example: adapting teaches the adapter never to predict a label it saw no example of. (How examples/petshop.jsonl
    and examples/review_aspects.jsonl were made.)"""
    rank: Counter[str] = Counter()
    keyed = []
    for index, example in enumerate(task.examples("train")):
        keyed.append((rank[example.output], index, example))
        rank[example.output] += 1
    return [[e.input, e.output] for _, _, e in sorted(keyed, key=lambda item: item[:2])[:k]]
