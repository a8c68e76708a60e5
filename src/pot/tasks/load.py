"""One entry point for every task source, named by a spec string.

    humaneval                          the 164 HumanEval problems
    mbpp:<split>                       shipped MBPP split: prompt, validation, train, sanitized
    mbpp:<path>                        any MBPP-format .jsonl/.json (e.g. the full mbpp.jsonl)
    mbppplus[:<validation|train>]      shipped MBPP+ (EvalPlus) dev tasks: all 160, or a split
    mbppplus:<path>                    any MbppPlus-format .jsonl/.jsonl.gz (EvalPlus's releases)
    lcb:<path>                         a LiveCodeBench code_generation_lite release file
    jsonl:<path>                       our format (docs/task-format.md)
    hf:<dataset>[:<config>][:<split>]  a Hugging Face dataset id, or hf:<saved dir>[:<split>]
    <path>.jsonl / .json / .jsonl.gz   any of the formats above, recognised by its fields

One task: append "/<id>" (humaneval/HumanEval/12, mbpp:validation/523, lcb:file.jsonl/abc301_a,
mbppplus/Mbpp/2) or "#<id>" to any spec (hf:openai_humaneval#HumanEval/12);
"humaneval:HumanEval/12" works too. The id may omit its collection prefix: mbpp:validation/523
finds "mbpp/523", mbppplus/Mbpp/2 and mbppplus/2 find "mbppplus/Mbpp/2".
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pot.tasks.formats import tasks_of_records
from pot.tasks.hf import load_hf
from pot.tasks.humaneval import load_humaneval
from pot.tasks.jsonl import load_jsonl
from pot.tasks.livecodebench import load_livecodebench
from pot.tasks.mbpp import MBPP_SPLITS, load_mbpp
from pot.tasks.records import read_records
from pot.tasks.task import Task, TaskFormatError

SPEC_HELP = (
    "use humaneval, mbpp:<prompt|validation|train|sanitized|path>, "
    "mbppplus[:validation|train|path], lcb:<path>, jsonl:<path>, "
    "hf:<dataset>[:config][:split] or a .jsonl/.json path"
)
FILE_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
MBPPPLUS_SPLIT_NAMES = ("validation", "train")  # pot.tasks.mbppplus.MBPPPLUS_SPLITS
PATH_WITH_ID = re.compile(r"^(.*?\.jsonl?(?:\.gz)?)/(.+)$")
AnyTask = TypeVar("AnyTask")  # a Task or a MathTask: anything with `id` and `metadata`


@dataclass(frozen=True)
class Selection:
    """Which tasks of a source a run takes, applied in this order: the contest-date window
    (LiveCodeBench's `contest_date`, both ends inclusive, days as YYYY-MM-DD: the paper's v5
    and v6 are such windows), the ids, then skip the first `skip` and keep the next `limit`."""

    ids: tuple[str, ...] = ()
    skip: int = 0
    limit: int | None = None
    since: str | None = None
    until: str | None = None

    def __post_init__(self) -> None:
        if self.skip < 0 or (self.limit is not None and self.limit < 0):
            raise TaskFormatError("--skip and --limit take a count >= 0")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None:
                try:
                    datetime.date.fromisoformat(value)
                except ValueError:
                    raise TaskFormatError(
                        f"--{name} {value!r}: give a day as YYYY-MM-DD, e.g. 2024-08-01"
                    ) from None
        if self.since and self.until and self.since > self.until:
            raise TaskFormatError(f"--since {self.since} is after --until {self.until}")

    @classmethod
    def parse_ids(cls, text: str) -> tuple[str, ...]:
        ids = tuple(part.strip() for part in text.split(",") if part.strip())
        if not ids or len(set(ids)) != len(ids):
            raise TaskFormatError(f"--ids {text!r}: give distinct task ids, e.g. 2,6,567")
        return ids

    def apply(self, tasks: Sequence[AnyTask], source: str) -> list[AnyTask]:
        chosen = list(tasks)
        if self.since or self.until:
            chosen = [t for t in chosen if self.in_window(t, source)]
        if self.ids:
            chosen = [find_task(chosen, task_id, source) for task_id in self.ids]
        chosen = chosen[self.skip :]
        return chosen if self.limit is None else chosen[: self.limit]

    def in_window(self, task: Any, source: str) -> bool:
        day = str(task.metadata.get("contest_date", ""))[:10]
        if not day:
            raise TaskFormatError(
                f"--since/--until select by contest_date, and {task.id} of {source} has none "
                "(LiveCodeBench tasks have it)"
            )
        return (self.since or day) <= day <= (self.until or day)


def load_tasks(
    spec: str, *, limit: int | None = None, selection: Selection | None = None
) -> list[Task]:
    """The tasks `spec` names (all of a collection, or the one task of an id spec), narrowed
    by `selection`; `limit` is a shorthand for Selection(limit=...)."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    selection = selection or Selection(limit=limit)
    source, task_id = split_spec(spec)
    tasks = load_source(source)
    if task_id is not None:
        return [find_task(tasks, task_id, source)]
    return selection.apply(tasks, source)


def get_task(spec: str) -> Task:
    """The one task `spec` names: by id, or the only task of a one-task source."""
    source, task_id = split_spec(spec)
    tasks = load_source(source)
    if task_id is not None:
        return find_task(tasks, task_id, source)
    if len(tasks) != 1:
        raise TaskFormatError(
            f"'{spec}' holds {len(tasks)} tasks; name one, e.g. '{source}#{tasks[0].id}'"
        )
    return tasks[0]


def split_spec(spec: str) -> tuple[str, str | None]:
    """(source, task id or None) of a spec."""
    if "#" in spec:
        source, task_id = spec.rsplit("#", 1)
        return source, task_id
    for prefix in ("humaneval/", "humaneval:"):
        if spec.startswith(prefix):
            return "humaneval", spec.removeprefix(prefix)
    if spec.startswith("mbpp:"):
        split, _, task_id = spec.removeprefix("mbpp:").partition("/")
        if split in MBPP_SPLITS and task_id:
            return f"mbpp:{split}", task_id
    if spec.startswith("mbppplus/"):
        return "mbppplus", spec.removeprefix("mbppplus/")
    if spec.startswith("mbppplus:"):
        split, _, task_id = spec.removeprefix("mbppplus:").partition("/")
        if split in MBPPPLUS_SPLIT_NAMES and task_id:
            return f"mbppplus:{split}", task_id
    if not spec.startswith("hf:") and (match := PATH_WITH_ID.match(spec)):
        return match[1], match[2]
    return spec, None


def load_source(source: str) -> list[Task]:
    kind, _, rest = source.partition(":")
    if source == "humaneval":
        return load_humaneval()
    if kind == "mbpp" and rest:
        return load_mbpp(rest)
    if kind == "mbppplus":
        # Imported here: MBPP+ runs its references in the sandbox, which imports pot.tasks.
        from pot.tasks.mbppplus import load_mbppplus

        return load_mbppplus(rest)
    if kind == "lcb" and rest:
        return load_livecodebench(rest)
    if kind == "jsonl" and rest:
        return load_jsonl(rest)
    if kind == "hf" and rest and rest.count(":") <= 2:
        dataset, config, split = (rest.split(":") + ["", ""])[:3]
        return load_hf(dataset, config or None, split or None)
    if source.endswith(FILE_SUFFIXES):
        return tasks_of_records(read_records(source), source)
    raise TaskFormatError(f"unknown task spec '{source}'; {SPEC_HELP}")


def find_task(tasks: Sequence[AnyTask], task_id: str, source: str) -> AnyTask:
    """The task with id `task_id`, or whose id ends in "/<task_id>" (523 → mbpp/523,
    Mbpp/2 → mbppplus/Mbpp/2)."""
    matches = [task for task in tasks if task.id == task_id] or [
        task for task in tasks if task.id.endswith(f"/{task_id}")
    ]
    if len(matches) == 1:
        return matches[0]
    if matches:
        ids = ", ".join(task.id for task in matches)
        raise TaskFormatError(
            f"task id '{task_id}' is ambiguous in {source} ({ids}); give it whole"
        )
    ids = f"{tasks[0].id} … {tasks[-1].id}" if tasks else "none"
    raise TaskFormatError(
        f"unknown task id '{task_id}' in {source} ({len(tasks)} tasks, ids {ids}); "
        "pick an id of that source"
    )
