"""The resumable benchmark runner: tasks x methods x seeds, one JSON line per finished result.

A run lives in a folder: `run.json` holds the config (checked on every restart: a different
config is an error, never a silent mix) and the environment of each session that wrote to it;
`results.jsonl` gets one record per (task, method, seed), appended and fsynced as each one
finishes. A restart skips every key already in the file, so a killed run resumes with nothing
lost or duplicated; a last line cut short by the kill is dropped and that item run again.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import platform
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from pot.budget import Budget
from pot.methods import METHODS, method_config, solve
from pot.sandbox import Sandbox
from pot.tasks import Task

RESULTS = "results.jsonl"
RUN = "run.json"
Key = tuple[str, str, int]  # (task_id, method, seed)


class BenchError(ValueError):
    pass


@dataclass
class BenchSpec:
    """What a run is: everything here is checked to be the same when a run is resumed."""

    tasks: str = "mbpp:validation"
    methods: list[str] = field(default_factory=lambda: ["pot"])
    budget: str = "programs=12"
    seeds: list[int] = field(default_factory=lambda: [0])
    limit: int | None = None
    model: str = "default"
    overrides: dict[str, str] = field(default_factory=dict)  # --set key=value
    oracle: bool = False

    def method_configs(self) -> dict[str, Any]:
        """Each method's config with the overrides that apply to it (see `split_overrides`)."""
        configs = {}
        for method, overrides in split_overrides(self.methods, self.overrides).items():
            try:
                configs[method] = method_config(method, overrides)
            except (TypeError, ValueError) as e:
                raise BenchError(f"--set for {method}: {e}") from None
        return configs


def has_option(method: str, key: str) -> bool:
    target = method_config(method)
    *parents, name = key.split(".")
    for part in parents:
        target = getattr(target, part, None)
    return dataclasses.is_dataclass(target) and name in {f.name for f in dataclasses.fields(target)}


def split_overrides(methods: list[str], overrides: dict[str, str]) -> dict[str, dict[str, str]]:
    """Per-method overrides. `pot.search.k=8` is scoped to the method named first; an unscoped
    key (`search.k=8`) goes to every method of the run whose config has it (none: an error).
    A scoped value wins over an unscoped one for its method."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise BenchError(f"unknown method {unknown[0]!r}: choose from {', '.join(METHODS)}")
    per_method: dict[str, dict[str, str]] = {m: {} for m in methods}
    scoped = {}
    for key, value in overrides.items():
        method, _, option = key.partition(".")
        if method in METHODS:
            if method not in methods:
                raise BenchError(f"--set {key}: {method} is not one of this run's methods")
            if not has_option(method, option):
                raise BenchError(f"--set {key}: {method} has no option {option!r}")
            scoped[(method, option)] = value
            continue
        takers = [m for m in methods if has_option(m, key)]
        if not takers:
            raise BenchError(
                f"--set {key}: no method of this run ({', '.join(methods)}) has that option"
            )
        for method in takers:
            per_method[method][key] = value
    for (method, option), value in scoped.items():
        per_method[method][option] = value
    return per_method


@dataclass(frozen=True)
class Job:
    """One unit of work, self-contained so that it can be shipped to a remote worker."""

    task: Task
    method: str
    seed: int
    config: Any
    budget: Budget
    oracle: bool
    run_id: str


@dataclass(frozen=True)
class ModelPolicy:
    """A picklable policy factory: loads `model` where it is called, with `engine` resolved
    there (pot.policy.engines: a Ray worker with a GPU uses it, else the CPU)."""

    model: str = "default"
    engine: str = "auto"

    def __call__(self) -> Any:
        from pot.policy.engines import load_policy

        return load_policy(self.model, self.engine)


class BenchWorker:
    """Owns one policy and one sandbox and solves jobs one after another."""

    def __init__(
        self,
        policy_factory: Callable[[], Any],
        sandbox_factory: Callable[[], Sandbox],
        name: str = "local",
    ) -> None:
        self.name = name
        self.policy = policy_factory()
        self.sandbox = sandbox_factory()

    def environment(self) -> dict[str, Any]:
        return {
            "worker": self.name,
            "host": socket.gethostname(),
            "isolation": self.sandbox.isolation,
            "device": str(getattr(self.policy, "device", "unknown")),
            "engine": getattr(self.policy, "engine_name", "unknown"),
        }

    def run(self, job: Job) -> dict[str, Any]:
        result = solve(
            job.task,
            self.policy,
            self.sandbox,
            job.method,
            config=job.config,
            budget=job.budget,
            seed=job.seed,
            oracle=job.oracle,
        )
        return {**result.to_dict(), "run_id": job.run_id, "worker": self.name}

    def close(self) -> None:
        self.sandbox.close()


class Executor(Protocol):
    """Runs jobs and yields their records as they finish, in any order."""

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def environment(self) -> list[dict[str, Any]]: ...

    def run(self, jobs: list[Job]) -> Iterator[dict[str, Any]]: ...


class SerialExecutor:
    """One worker in this process."""

    def __init__(
        self, policy_factory: Callable[[], Any], sandbox_factory: Callable[[], Sandbox] = Sandbox
    ) -> None:
        self.policy_factory, self.sandbox_factory = policy_factory, sandbox_factory

    def __enter__(self) -> SerialExecutor:
        self.worker = BenchWorker(self.policy_factory, self.sandbox_factory)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.worker.close()

    def environment(self) -> list[dict[str, Any]]:
        return [self.worker.environment()]

    def run(self, jobs: list[Job]) -> Iterator[dict[str, Any]]:
        for job in jobs:
            yield self.worker.run(job)


def run_config(spec: BenchSpec, tasks: list[Task]) -> dict[str, Any]:
    """The part of run.json that must match on resume (JSON-normalised for comparison)."""
    configs = spec.method_configs()
    config = {
        "tasks": spec.tasks,
        "limit": spec.limit,
        "task_ids": [t.id for t in tasks],
        "methods": spec.methods,
        "seeds": spec.seeds,
        "budget": dataclasses.asdict(Budget.parse(spec.budget)),
        "model": spec.model,
        "oracle": spec.oracle,
        "overrides": spec.overrides,
        "method_configs": {m: dataclasses.asdict(c) for m, c in configs.items()},
    }
    return json.loads(json.dumps(config))


def config_id(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("policy-of-thoughts", "torch", "transformers", "peft", "ray"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def git_commit() -> dict[str, Any] | None:
    """The commit of the source tree `pot` is imported from, and whether it had local edits."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


class RunFolder:
    """runs/NAME: run.json and results.jsonl, with an exclusive lock while a run writes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.results = self.path / RESULTS
        self.run_file = self.path / RUN

    @contextmanager
    def lock(self) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BenchError(
                    f"another `pot bench` is writing to {self.path}: wait, or pass another --out"
                ) from None
            yield

    def read_run(self) -> dict[str, Any] | None:
        return json.loads(self.run_file.read_text()) if self.run_file.exists() else None

    def write_run(self, run: dict[str, Any]) -> None:
        temporary = self.run_file.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(run, indent=1) + "\n")
        os.replace(temporary, self.run_file)

    def start(self, config: dict[str, Any], has_results: bool) -> None:
        """Record the config; with results already there, check it is the recorded one."""
        run = self.read_run()
        if run is None and has_results:
            raise BenchError(
                f"{self.results} has results but {self.run_file} is missing: "
                "restore it, or pass a new --out"
            )
        if run is not None and has_results:
            difference = first_difference(run["config"], config)
            if difference is not None:
                raise BenchError(
                    f"{self.path} holds a run with a different config ({difference}): "
                    "rerun with the same options to resume, or pass a new --out"
                )
            return
        self.write_run({"id": config_id(config), "config": config, "sessions": []})

    def add_session(self, workers: list[dict[str, Any]]) -> None:
        run = self.read_run()
        assert run is not None
        session = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": versions(),
            "git": git_commit(),
            "workers": workers,
        }
        run["sessions"].append(session)
        self.write_run(run)

    def records(self, repair: bool = False) -> list[dict[str, Any]]:
        """Every complete record. A last line without its newline (a write cut by a kill) is
        dropped, and with `repair` cut from the file; a bad line elsewhere is an error."""
        if not self.results.exists():
            return []
        data = self.results.read_bytes()
        complete, _, partial = data.rpartition(b"\n")
        if partial and repair:
            with open(self.results, "r+b") as handle:
                handle.truncate(len(complete) + 1 if complete else 0)
        records = []
        for number, line in enumerate(complete.split(b"\n") if complete else [], start=1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise BenchError(
                    f"{self.results}:{number}: not a JSON record; remove that line to resume"
                ) from None
        return records

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record) + "\n").encode()
        with open(self.results, "ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())


def first_difference(old: Any, new: Any, where: str = "") -> str | None:
    """A short description of the first place two JSON values differ, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            found = first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else key)
            if found:
                return found
        return None
    if old == new:
        return None
    if isinstance(old, list) and isinstance(new, list):
        return f"{where} differ"
    return f"{where}: {json.dumps(old)} before, {json.dumps(new)} now"


def plan_jobs(spec: BenchSpec, tasks: list[Task], done: set[Key], run_id: str) -> list[Job]:
    """Pending jobs, task by task and seed by seed, every method of a (task, seed) together:
    the methods of a pair are compared on the same problem with the same seed."""
    configs = spec.method_configs()
    budget = Budget.parse(spec.budget)
    return [
        Job(task, method, seed, configs[method], budget, spec.oracle, run_id)
        for task in tasks
        for seed in spec.seeds
        for method in spec.methods
        if (task.id, method, seed) not in done
    ]


def record_key(record: dict[str, Any]) -> Key:
    return (record["task_id"], record["method"], record["seed"])


def run_bench(
    out: Path,
    spec: BenchSpec,
    tasks: list[Task],
    executor: Executor,
    *,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    show_progress: bool = False,
) -> list[dict[str, Any]]:
    """Run what is not yet in `out`/results.jsonl; return every record of the run.

    `executor` is entered only if there is work left, so a finished run costs no model load.
    """
    if not tasks:
        raise BenchError(f"{spec.tasks} gave no tasks: check the spec and --limit")
    folder = RunFolder(out)
    with folder.lock():
        config = run_config(spec, tasks)
        records = folder.records(repair=True)
        folder.start(config, has_results=bool(records))
        jobs = plan_jobs(spec, tasks, {record_key(r) for r in records}, config_id(config))
        if not jobs:
            return records
        with executor, progress_bar(show_progress, len(records), len(jobs)) as advance:
            folder.add_session(executor.environment())
            for record in executor.run(jobs):
                folder.append(record)
                records.append(record)
                advance(record)
                if on_result is not None:
                    on_result(record)
    return records


@contextmanager
def progress_bar(show: bool, done: int, pending: int) -> Iterator[Callable[[dict[str, Any]], None]]:
    if not show:
        yield lambda record: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        bar = progress.add_task("bench", total=done + pending, completed=done)

        def advance(record: dict[str, Any]) -> None:
            verdict = "pass" if record["hidden_passed"] else "fail"
            description = f"{record['task_id']} {record['method']} s{record['seed']}: {verdict}"
            progress.update(bar, advance=1, description=description)

        yield advance
