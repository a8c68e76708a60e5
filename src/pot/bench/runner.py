"""The resumable benchmark runner: tasks x methods x seeds, one JSON line per finished job.

A run lives in a folder: `run.json` holds the config and the identity (engine, sandbox, model
hash, library versions), checked on every restart: a different config is an error, a different
identity too unless allowed (then flagged), never a silent mix; and each invocation that ran
jobs, with its git commit. `results.jsonl` gets one record per (task, method, seed), appended
and fsynced as each job finishes: a result, or an error record (the job raised, hung past its
limit, or its worker died), whose traceback goes to `errors/`. A restart skips every key
already in the file, so a killed run resumes with nothing lost or duplicated; a last line cut
short by the kill is dropped and that job run again. `retry_errors` reruns the errored jobs; a
later record of a key supersedes an earlier one.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pot.bench.config import dotted_fields, nearest, option_keys, render_config
from pot.bench.identity import git_commit, run_identity, versions
from pot.bench.worker import Job, JobKey, SandboxSettings
from pot.budget import Budget
from pot.methods import METHODS, method_config
from pot.overrides import apply_overrides
from pot.policy.engines import EngineOptions, is_engine_option
from pot.tasks.load import Selection

RESULTS = "results.jsonl"
RUN = "run.json"
CONFIG = "config.toml"
ERRORS = "errors"
DOMAINS = ("code", "math")
Key = JobKey


class BenchError(ValueError):
    pass


@dataclass
class BenchSpec:
    """What a run is: its config and identity are checked to be the same on resume."""

    tasks: str = "mbpp:validation"
    methods: list[str] = field(default_factory=lambda: ["pot"])
    budget: str = "programs=12"
    seeds: list[int] = field(default_factory=lambda: [0])
    limit: int | None = None
    model: str = "default"
    overrides: dict[str, str] = field(default_factory=dict)  # --set key=value
    oracle: bool = False
    engine: str = "auto"
    domain: str = "code"  # "math": `pot math`'s tasks and methods
    ids: list[str] = field(default_factory=list)
    skip: int = 0
    since: str | None = None
    until: str | None = None
    job_timeout: float | None = None  # seconds per job; not part of the identity

    def selection(self) -> Selection:
        return Selection(tuple(self.ids), self.skip, self.limit, self.since, self.until)

    def sandbox_settings(self) -> SandboxSettings | None:
        """The sandbox of a code run, from its `sandbox.*` overrides; math runs have none."""
        if self.domain == "math":
            return None
        own = {k.removeprefix("sandbox."): v for k, v in self.overrides.items() if is_sandbox(k)}
        try:
            return SandboxSettings.from_overrides(own)
        except ValueError as e:
            raise BenchError(f"--set {e}") from None

    def engine_options(self) -> dict[str, str]:
        """The `llamacpp.*` / `vllm.*` overrides, checked (pot.policy.engines)."""
        options = {k: v for k, v in self.overrides.items() if is_engine_option(k)}
        try:
            EngineOptions.parse(options)
        except ValueError as e:
            raise BenchError(f"--set {e}") from None
        return options

    def method_configs(self) -> dict[str, Any]:
        """Each method's config with the overrides that apply to it (see `split_overrides`)."""
        method_overrides = {
            k: v for k, v in self.overrides.items() if not is_sandbox(k) and not is_engine_option(k)
        }
        if self.domain == "math":
            return math_configs(self.methods, method_overrides)
        configs = {}
        for method, overrides in split_overrides(self.methods, method_overrides).items():
            try:
                configs[method] = method_config(method, overrides)
            except (TypeError, ValueError) as e:
                raise BenchError(f"--set for {method}: {e}") from None
        return configs

    def settings(self) -> dict[str, Any]:
        """The spec as the keys of a config file (pot.bench.config)."""
        return {
            "domain": self.domain,
            "tasks": self.tasks,
            "methods": self.methods,
            "budget": self.budget,
            "seeds": self.seeds,
            "model": self.model,
            "engine": self.engine,
            "oracle": self.oracle,
            "limit": self.limit,
            "ids": self.ids,
            "skip": self.skip,
            "since": self.since,
            "until": self.until,
            "job_timeout": self.job_timeout,
            "set": self.overrides,
        }


def is_sandbox(key: str) -> bool:
    return key.startswith("sandbox.")


def math_configs(methods: list[str], overrides: dict[str, str]) -> dict[str, Any]:
    """`pot math`'s methods share one MathConfig: every override applies to each."""
    from pot.methods.math_methods import MATH_METHODS, MathConfig

    unknown = [m for m in methods if m not in MATH_METHODS]
    if unknown or not methods:
        what = f"unknown math method {unknown[0]!r}" if unknown else "no method given"
        raise BenchError(f"--methods: {what}; use {', '.join(MATH_METHODS)}")
    try:
        return {m: apply_overrides(MathConfig(), overrides, "pot math") for m in methods}
    except ValueError as e:
        raise BenchError(str(e)) from None


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
                hint = nearest(option, dotted_fields(method_config(method)))
                raise BenchError(f"--set {key}: {method} has no option {option!r}{hint}")
            scoped[(method, option)] = value
            continue
        takers = [m for m in methods if has_option(m, key)]
        if not takers:
            hint = nearest(key, option_keys("code"))
            raise BenchError(
                f"--set {key}: no method of this run ({', '.join(methods)}) has that option{hint}"
            )
        for method in takers:
            per_method[method][key] = value
    for (method, option), value in scoped.items():
        per_method[method][option] = value
    return per_method


def run_config(spec: BenchSpec, tasks: list[Any]) -> dict[str, Any]:
    """What the results measure (run.json's `config`): must match on resume, always."""
    if spec.domain not in DOMAINS:
        raise BenchError(f"unknown domain {spec.domain!r}: use {' or '.join(DOMAINS)}")
    configs = spec.method_configs()
    config = {
        "domain": spec.domain,
        "tasks": spec.tasks,
        "limit": spec.limit,
        "ids": spec.ids,
        "skip": spec.skip,
        "since": spec.since,
        "until": spec.until,
        "task_ids": [t.id for t in tasks],
        "methods": spec.methods,
        "seeds": spec.seeds,
        "budget": dataclasses.asdict(Budget.parse(spec.budget)),
        "model": spec.model,
        "oracle": spec.oracle,
        "overrides": {k: v for k, v in spec.overrides.items() if not is_sandbox(k)},
        "method_configs": {m: dataclasses.asdict(c) for m, c in configs.items()},
    }
    return json.loads(json.dumps(config))


def spec_identity(spec: BenchSpec) -> dict[str, Any]:
    """What the results were measured with (run.json's `identity`)."""
    sandbox = spec.sandbox_settings()
    identity = run_identity(spec.model, spec.engine, sandbox.to_dict() if sandbox else None)
    return json.loads(json.dumps(identity))


def config_id(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def is_error(record: dict[str, Any]) -> bool:
    return "error" in record


def record_key(record: dict[str, Any]) -> Key:
    return (record["task_id"], record["method"], record["seed"])


class RunFolder:
    """runs/NAME: run.json, results.jsonl, errors/ and config.toml, locked while a run writes."""

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
                    f"another run is writing to {self.path}: wait, or pass another --out"
                ) from None
            yield

    def read_run(self) -> dict[str, Any] | None:
        return json.loads(self.run_file.read_text()) if self.run_file.exists() else None

    def write_run(self, run: dict[str, Any]) -> None:
        replace_file(self.run_file, json.dumps(run, indent=1) + "\n")

    def start(
        self, config: dict[str, Any], identity: dict[str, Any], has_results: bool, allow_mixed: bool
    ) -> str | None:
        """Record config and identity; with results already there, check they are the recorded
        ones. Returns how the identity differs when `allow_mixed` let it through."""
        run = self.read_run()
        if run is None and has_results:
            raise BenchError(
                f"{self.results} has results but {self.run_file} is missing: "
                "restore it, or pass a new --out"
            )
        if run is None or not has_results:
            self.write_run(
                {"id": config_id(config), "config": config, "identity": identity, "sessions": []}
            )
            return None
        difference = first_difference(run["config"], config)
        if difference is not None:
            raise BenchError(
                f"{self.path} holds a run with a different config ({difference}): "
                "rerun with the same options to resume, or pass a new --out"
            )
        difference = first_difference(run.get("identity"), identity)
        if difference is not None and not allow_mixed:
            raise BenchError(mixed_message(self.path, difference))
        return difference

    def add_session(
        self, identity: dict[str, Any], workers: list[dict[str, Any]], mixed: list[str]
    ) -> int:
        """Record this invocation (it has jobs to run); its number goes into its records."""
        run = self.read_run()
        assert run is not None
        number = len(run["sessions"]) + 1
        session = {
            "number": number,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": versions(),
            "git": git_commit(),
            "identity": identity,
            "workers": workers,
        }
        if mixed:
            session["mixed"] = mixed
        run["sessions"].append(session)
        self.write_run(run)
        return number

    def records(self, repair: bool = False) -> list[dict[str, Any]]:
        """The latest record of each key, results and errors. A last line without its newline
        (a write cut by a kill) is dropped, and with `repair` cut from the file; a bad line
        elsewhere is an error."""
        if not self.results.exists():
            return []
        data = self.results.read_bytes()
        complete, _, partial = data.rpartition(b"\n")
        if partial and repair:
            with open(self.results, "r+b") as handle:
                handle.truncate(len(complete) + 1 if complete else 0)
        latest: dict[Key, dict[str, Any]] = {}
        for number, line in enumerate(complete.split(b"\n") if complete else [], start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise BenchError(
                    f"{self.results}:{number}: not a JSON record; remove that line to resume"
                ) from None
            supersede(latest, record)
        return list(latest.values())

    def result_records(self) -> list[dict[str, Any]]:
        """The latest record of each key that is a result, not an error."""
        return [r for r in self.records() if not is_error(r)]

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append one record (an error's traceback to its side file first) and fsync it."""
        if is_error(record):
            record = {**record, "error": self.save_traceback(record)}
        line = (json.dumps(record) + "\n").encode()
        with open(self.results, "ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        return record

    def save_traceback(self, record: dict[str, Any]) -> dict[str, Any]:
        error = dict(record["error"])
        if not error["traceback"]:
            error["traceback"] = None
            return error
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{record['task_id']}.{record['method']}")
        path = Path(ERRORS) / f"{name}.s{record['seed']}.txt"
        (self.path / ERRORS).mkdir(exist_ok=True)
        (self.path / path).write_text(error["traceback"])
        error["traceback"] = str(path)
        return error


def supersede(latest: dict[Key, dict[str, Any]], record: dict[str, Any]) -> None:
    """Make `record` its key's latest (a retried job's record comes after its error's)."""
    latest.pop(record_key(record), None)
    latest[record_key(record)] = record


def replace_file(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def mixed_message(path: Path, difference: str) -> str:
    return (
        f"{path} holds results made with another setup ({difference}): rerun with the same "
        "engine, sandbox, model and libraries, add --allow-mixed to mix them anyway, "
        "or pass a new --out"
    )


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
    return f"{where or 'identity'}: {json.dumps(old)} before, {json.dumps(new)} now"


def workers_difference(run: dict[str, Any], workers: list[dict[str, Any]]) -> str | None:
    """How the engines and sandbox isolation that the workers resolved ("auto") differ from
    those of the run's first session, or None."""

    def resolved(workers: list[dict[str, Any]]) -> list[str]:
        return sorted({f"{w.get('engine')} engine, {w.get('isolation')} sandbox" for w in workers})

    if not run["sessions"]:
        return None
    before, now = resolved(run["sessions"][0]["workers"]), resolved(workers)
    return None if before == now else f"workers: {'; '.join(before)} before, {'; '.join(now)} now"


def plan_jobs(spec: BenchSpec, tasks: list[Any], done: set[Key], run_id: str) -> list[Job]:
    """Pending jobs, task by task and seed by seed, every method of a (task, seed) together:
    the methods of a pair are compared on the same problem with the same seed."""
    configs = spec.method_configs()
    budget = Budget.parse(spec.budget)
    return [
        Job(task, method, seed, configs[method], budget, spec.oracle, run_id, spec.domain)
        for task in tasks
        for seed in spec.seeds
        for method in spec.methods
        if (task.id, method, seed) not in done
    ]


class Executor(Protocol):
    """Runs jobs on workers that it starts in `open` and stops when that context ends."""

    def open(
        self, sandbox: SandboxSettings | None, job_timeout: float | None
    ) -> AbstractContextManager[Any]: ...

    def environment(self) -> list[dict[str, Any]]: ...

    def run(self, jobs: list[Job]) -> Iterator[dict[str, Any]]:
        """Each job's record (a result or an error) as it finishes, in any order."""
        ...


def run_bench(
    out: Path,
    spec: BenchSpec,
    tasks: list[Any],
    executor: Executor,
    *,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    show_progress: bool = False,
    retry_errors: bool = False,
    allow_mixed: bool = False,
) -> list[dict[str, Any]]:
    """Run what is not yet in `out`/results.jsonl; return the latest record of every key.

    The executor starts its workers only if there is work left, so a finished run costs no
    model load. With `retry_errors`, the jobs whose record is an error run again.
    """
    if not tasks:
        raise BenchError(f"{spec.tasks} gave no tasks: check the spec and the task selection")
    folder = RunFolder(out)
    with folder.lock():
        config = run_config(spec, tasks)
        identity = spec_identity(spec)
        records = folder.records(repair=True)
        difference = folder.start(config, identity, bool(records), allow_mixed)
        replace_file(folder.path / CONFIG, render_config(spec.settings()))
        done = {record_key(r) for r in records if not (retry_errors and is_error(r))}
        jobs = plan_jobs(spec, tasks, done, config_id(config))
        if not jobs:
            return records
        latest = {record_key(r): r for r in records}
        with executor.open(spec.sandbox_settings(), spec.job_timeout):
            workers = executor.environment()
            run = folder.read_run()
            assert run is not None
            resolved = workers_difference(run, workers)
            if resolved is not None and not allow_mixed:
                raise BenchError(mixed_message(folder.path, resolved))
            session = folder.add_session(
                identity, workers, [d for d in (difference, resolved) if d]
            )
            total = len(tasks) * len(spec.methods) * len(spec.seeds)
            with progress_bar(show_progress, total - len(jobs), len(jobs)) as advance:
                for record in executor.run(jobs):
                    record = folder.append({**record, "session": session})
                    supersede(latest, record)
                    advance(record)
                    if on_result is not None:
                        on_result(record)
    return list(latest.values())


def outcome(record: dict[str, Any]) -> str:
    """pass, fail or error: a code result passes its hidden tests, a math one is correct."""
    if is_error(record):
        return f"error ({record['error']['type']})"
    return "pass" if record.get("hidden_passed", record.get("correct")) else "fail"


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
            verdict = outcome(record)
            description = f"{record['task_id']} {record['method']} s{record['seed']}: {verdict}"
            progress.update(bar, advance=1, description=description)

        yield advance
