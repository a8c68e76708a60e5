"""Reading task files into JSON records that remember where they came from."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pot.tasks.task import Task, TaskFormatError

TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "an object", bool: "a bool"}


@dataclass(frozen=True)
class Record:
    """One JSON object of a task file; `origin` names file and line (or dataset and row)."""

    data: dict[str, Any]
    origin: str

    def named(self, task_id: str) -> Record:
        """The same record, with its task id added to `origin`."""
        return Record(self.data, f"{self.origin} ({task_id})")

    def error(self, problem: str, fix: str = "") -> TaskFormatError:
        return TaskFormatError(f"{self.origin}: {problem}" + (f"; {fix}" if fix else ""))

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        """The field `name`, checked to be of type `kind`; missing → `default` or an error."""
        if name not in self.data or (self.data[name] is None and default is not ...):
            if default is ...:
                raise self.error(f"missing field '{name}'", f"add it as {type_name(kind)}")
            return default
        value = self.data[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _tuple(kind)):
            raise self.error(
                f"field '{name}' must be {type_name(kind)}, got {type(value).__name__}"
            )
        return value

    def get_strings(self, name: str, default: Any = ...) -> list[str]:
        """The field `name` as a list of strings."""
        values = self.get(name, list, default)
        for index, value in enumerate(values):
            if not isinstance(value, str):
                raise self.error(
                    f"field '{name}' item {index} must be a string, got {type(value).__name__}"
                )
        return values


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def type_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(TYPE_NAMES.get(k, k.__name__) for k in _tuple(kind))


def read_records(path: str | Path) -> list[Record]:
    """The JSON objects of a .jsonl, .jsonl.gz or .json (one list of objects) file."""
    path = Path(path)
    if not path.is_file():
        raise TaskFormatError(f"task file not found: {path}; check the path")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as file:
        text = file.read()
    if path.name.endswith((".json", ".json.gz")):
        records = _records_of_json(text, path)
    else:
        records = _records_of_jsonl(text, path)
    if not records:
        raise TaskFormatError(f"{path} holds no tasks; write one JSON object per line")
    return records


def _records_of_jsonl(text: str, path: Path) -> list[Record]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise TaskFormatError(
                f"{path} line {number}: not valid JSON ({error.msg} at column {error.colno}); "
                "each line must be one JSON object"
            ) from None
        records.append(_checked_object(data, f"{path} line {number}"))
    return records


def _records_of_json(text: str, path: Path) -> list[Record]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise TaskFormatError(
            f"{path}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
        ) from None
    if not isinstance(data, list):
        raise TaskFormatError(
            f"{path}: a .json task file must hold one list of objects, got "
            f"{type(data).__name__}; use .jsonl for one object per line"
        )
    return [_checked_object(item, f"{path} record {index}") for index, item in enumerate(data)]


def _checked_object(data: Any, origin: str) -> Record:
    if not isinstance(data, dict):
        raise TaskFormatError(f"{origin}: must be a JSON object, got {type(data).__name__}")
    return Record(data, origin)


def parse_records(records: list[Record], parse: Callable[[Record], Task]) -> list[Task]:
    """`parse` applied to every record; task ids must be unique."""
    tasks = []
    origin_of_id: dict[str, str] = {}
    for record in records:
        task = parse(record)
        if task.id in origin_of_id:
            raise record.error(
                f"task id '{task.id}' is already used at {origin_of_id[task.id]}",
                "make the ids unique",
            )
        origin_of_id[task.id] = record.origin
        tasks.append(task)
    return tasks
