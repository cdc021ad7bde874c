"""Traffic for new-need discovery (adapters.discover): reading a JSONL/CSV file of messages with optional
timestamps, refusing traffic too small to group, and each cluster's size and share over time."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from prompts import DataError, ShopLoRAError
from prompts.loaders import MAX_CHARS, read_rows

TEXT_KEYS = ("input", "text", "message")
TIME_KEYS = ("timestamp", "time", "created_at")


def parse_times(values: Sequence[Any], n: int) -> list[datetime]:
    values = list(values)
    if len(values) != n:
        raise ShopLoRAError(f"{len(values)} timestamps for {n} messages: give one per message, or none")
    return [parse_time(value, f"timestamp {number}") for number, value in enumerate(values, start=1)]


def parse_time(value: Any, where: str) -> datetime:
    """An ISO 8601 text ('2026-12-01T09:30:00Z', '2026-12-01') or Unix seconds, as an aware UTC datetime."""
    try:
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(float(value), timezone.utc)
        elif isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):  # Unix seconds from a CSV
            moment = datetime.fromtimestamp(float(value), timezone.utc)
        elif isinstance(value, str) and value.strip():
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        else:
            raise ValueError
    except (ValueError, OverflowError, OSError):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        raise ShopLoRAError(
            f'{where} is {shown}, not a time: use ISO 8601 (e.g. "2026-12-01T09:30:00Z") or Unix seconds'
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def timeline(members: Sequence[datetime], everything: Sequence[datetime]) -> list[dict]:
    """Per period (an hour under 2 days of traffic, a day under 60, else an ISO week): the cluster's messages and
    their share of all messages then. A need whose share rises is new."""
    span = max(everything) - min(everything)
    fmt = "%Y-%m-%d %H:00" if span.days < 2 else "%Y-%m-%d" if span.days < 60 else "%G-W%V"
    total = Counter(t.astimezone(timezone.utc).strftime(fmt) for t in everything)
    mine = Counter(t.astimezone(timezone.utc).strftime(fmt) for t in members)
    return [
        {"period": period, "size": mine[period], "share": round(mine[period] / total[period], 4)}
        for period in sorted(total)
    ]


# -- traffic files -------------------------------------------------------------------------------------------------
def load_traffic(path: str | Path) -> tuple[list[str], list[Any] | None]:
    """(messages, timestamps or None) of a JSONL/CSV traffic file: a text column (input, text or message) and
    optionally a time column (timestamp, time or created_at) on every row."""
    path = Path(path)
    if path.is_file() and not path.read_bytes().strip():
        raise DataError(
            f"{path} is empty: traffic is one message a line, e.g. "
            '{"input": "do you sell rabbit food?", "timestamp": "2026-12-01T09:30:00Z"}'
        )
    texts, times = [], []
    for place, row in read_rows(path):
        key = next((k for k in TEXT_KEYS if k in row), None)
        if key is None or not isinstance(row[key], str) or not row[key].strip():
            raise DataError(f"{place}: no message; each row needs a non-empty text in one of {', '.join(TEXT_KEYS)}")
        if len(row[key]) > MAX_CHARS:
            raise DataError(f"{place}: the message has {len(row[key])} characters, over {MAX_CHARS}; shorten it")
        texts.append(row[key])
        time_key = next((k for k in TIME_KEYS if k in row and row[k] not in (None, "")), None)
        times.append(parse_time(row[time_key], f"{place}, {time_key}") if time_key else None)
    if not texts:
        raise DataError(f'{path} holds no messages; add rows like {{"input": "..."}}')
    if all(t is None for t in times):
        return texts, None
    if any(t is None for t in times):
        missing = times.index(None) + 1
        raise DataError(f"{path}: message {missing} has no timestamp while others do; give every row one, or none")
    return texts, times


def check_traffic(texts: Sequence[str]) -> None:
    """Refuse traffic too small to group, before any model work."""
    if len(texts) < 2:
        raise ShopLoRAError(
            f"{'no messages' if not texts else 'a single message'} to look at: discovery groups "
            "messages, give at least 2 (e.g. a day of customer messages)"
        )
