"""Tasks from Hugging Face datasets (needs the `datasets` package, and a network for hub ids).

Rows go through the same record parsers as the files: openai_humaneval rows are human-eval
records, google-research-datasets/mbpp rows (configs full, sanitized) are MBPP records, and
livecodebench/code_generation_lite rows are release-file records.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pot.tasks.formats import tasks_of_records
from pot.tasks.records import Record
from pot.tasks.task import Task, TaskFormatError

LCB_REPO = "livecodebench/code_generation_lite"
# The release files of LCB_REPO in release order; release_vN is the first N, vN the Nth alone.
LCB_FILES = ["test.jsonl"] + [f"test{number}.jsonl" for number in range(2, 7)]
DEFAULT_SPLIT = "test"


def load_hf(dataset: str, config: str | None = None, split: str | None = None) -> list[Task]:
    """Tasks from a hub dataset id (config and split optional; split defaults to "test") or
    from a directory written by `Dataset.save_to_disk` (then `split` picks a split)."""
    rows = hf_rows(dataset, config, split)
    records = [Record(dict(row), f"hf:{dataset} row {index}") for index, row in enumerate(rows)]
    return tasks_of_records(records, f"hf:{dataset}")


def hf_rows(dataset: str, config: str | None, split: str | None) -> Any:
    try:
        import datasets
    except ImportError:
        raise TaskFormatError(
            f"hf:{dataset} needs the datasets package; pip install 'policy-of-thoughts[hf]'"
        ) from None
    if Path(dataset).is_dir():
        saved = explained(dataset, datasets.load_from_disk, dataset)
        return saved_split(saved, split or config, dataset)  # a saved dataset has no configs
    if dataset == LCB_REPO:
        # The hub repo loads through a script, which datasets 4 no longer runs: read its files.
        files = [f"hf://datasets/{LCB_REPO}/{name}" for name in lcb_files(config)]
        return explained(dataset, datasets.load_dataset, "json", data_files=files, split="train")
    return explained(dataset, datasets.load_dataset, dataset, config, split=split or DEFAULT_SPLIT)


def explained(dataset: str, load: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`load(*args, **kwargs)`, its usual failures turned into a one-line TaskFormatError."""
    try:
        return load(*args, **kwargs)
    except Exception as error:  # datasets and its HTTP stack fail in many types, all shown alike
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise TaskFormatError(
            f"hf:{dataset}: cannot load ({type(error).__name__}: {first_line}); check the dataset "
            "id, config and split and the network, or pass a local file"
        ) from error


def saved_split(loaded: Any, split: str | None, dataset: str) -> Any:
    if not hasattr(loaded, "keys"):  # a single Dataset
        return loaded
    splits = list(loaded.keys())
    if split is None and len(splits) == 1:
        return loaded[splits[0]]
    chosen = split or DEFAULT_SPLIT
    if chosen not in splits:
        raise TaskFormatError(
            f"hf:{dataset} has no split '{chosen}'; add one of {', '.join(splits)} "
            f"as hf:{dataset}:<split>"
        )
    return loaded[chosen]


def lcb_files(version_tag: str | None) -> list[str]:
    """The release files of a LiveCodeBench version tag: release_v1..release_v6,
    release_latest, v1..v6 (one release's new problems) or a range like v5_v6."""
    tag = version_tag or "release_latest"
    if tag == "release_latest":
        return LCB_FILES
    if match := re.fullmatch(r"release_v(\d)", tag):
        last = int(match[1])
        if 1 <= last <= len(LCB_FILES):
            return LCB_FILES[:last]
    if match := re.fullmatch(r"v(\d)(?:_v(\d))?", tag):
        first, last = int(match[1]), int(match[2] or match[1])
        if 1 <= first <= last <= len(LCB_FILES):
            return LCB_FILES[first - 1 : last]
    raise TaskFormatError(
        f"unknown LiveCodeBench version tag '{tag}'; use release_v1 … release_v6, "
        "release_latest, v1 … v6 or a range like v5_v6"
    )
