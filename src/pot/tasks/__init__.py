"""Problems with public tests (feedback) and hidden tests (judging), and their loaders.

A method only ever sees `Task.public_tests`; `Task.hidden_tests` judge its final answer.
`load_tasks(spec)` / `get_task(spec)` read any source; see `pot.tasks.load` for the specs.
"""

from pot.tasks.hf import load_hf
from pot.tasks.humaneval import load_humaneval
from pot.tasks.jsonl import load_jsonl, task_record, write_jsonl
from pot.tasks.livecodebench import load_livecodebench
from pot.tasks.load import get_task, load_tasks
from pot.tasks.mbpp import MBPP_SPLITS, load_mbpp
from pot.tasks.task import Task, TaskFormatError, TaskKind, Test, TestKind

__all__ = [
    "MBPP_SPLITS",
    "Task",
    "TaskFormatError",
    "TaskKind",
    "Test",
    "TestKind",
    "get_task",
    "load_hf",
    "load_humaneval",
    "load_jsonl",
    "load_livecodebench",
    "load_mbpp",
    "load_tasks",
    "task_record",
    "write_jsonl",
]
