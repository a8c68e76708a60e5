"""`pot report`: the statistics on known cases, and every number of report.md recomputed here
independently from results.jsonl."""

import json
import math
import re

import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from pot.bench import run_bench
from pot.bench.report import (
    passes_at_budget,
    reward_by_simulation,
    sign_test,
    wilson_interval,
    write_report,
)
from pot.cli import app
from tests.test_bench import SPEC, bench_tasks, scripted


def test_wilson_interval_on_known_cases():
    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    low, high = wilson_interval(0, 10)
    assert low == pytest.approx(0.0, abs=1e-12) and round(high, 3) == 0.278
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_exact_sign_test_on_known_cases():
    assert sign_test(8, 2) == pytest.approx(2 * (1 + 10 + 45) / 1024)  # 0.109375
    assert sign_test(0, 5) == pytest.approx(0.0625)
    assert sign_test(3, 3) == 1.0 and sign_test(0, 0) == 1.0
    assert sign_test(20, 0) == pytest.approx(2 / 2**20)


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    records = run_bench(out, SPEC, bench_tasks(), scripted())
    write_report(out)
    return out, records


def table_rows(text: str, header_start: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_method_table_matches_the_jsonl(reported):
    out, _ = reported
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    rows = table_rows((out / "report.md").read_text(), "| method |")
    assert [row[0] for row in rows] == SPEC.methods
    for row in rows:
        mine = [r for r in records if r["method"] == row[0]]
        passed = sum(1 for r in mine if r["hidden_passed"] is True)
        n = len(mine)
        p = passed / n
        z = 1.959963984540054
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
        assert row[1:4] == [str(n), str(passed), f"{p:.3f}"]
        assert row[4] == f"[{max(0, centre - half):.3f}, {min(1, centre + half):.3f}]"
        costs = ["programs", "generated_tokens", "gradient_steps"]
        for cell, cost in zip(row[5:8], costs, strict=True):
            mean = sum(r["costs"][cost] for r in mine) / n
            assert float(cell) == pytest.approx(mean, abs=0.05 if mean >= 10 else 0.005)
    # The scripted policy: zero-shot writes the wrong program; the others reach the right one.
    assert [row[2] for row in rows] == ["0", "4", "4"]


def test_paired_comparison_matches_the_jsonl(reported):
    out, records = reported
    rows = table_rows((out / "report.md").read_text(), "| first |")
    assert len(rows) == 3  # every pair of the three methods
    outcome = {(r["method"], r["task_id"], r["seed"]): r["hidden_passed"] for r in records}
    for first, second, problems, wins, losses, ties, p in rows:
        pairs = [
            (outcome[(first, t, s)], outcome[(second, t, s)])
            for t in ["t/one", "t/two"]
            for s in SPEC.seeds
        ]
        w = sum(1 for a, b in pairs if a and not b)
        l_ = sum(1 for a, b in pairs if b and not a)
        assert [problems, wins, losses, ties] == [str(len(pairs)), str(w), str(l_)] + [
            str(len(pairs) - w - l_)
        ]
        n = w + l_
        expected = min(1.0, sum(math.comb(n, i) for i in range(min(w, l_) + 1)) / 2 ** (n - 1))
        assert float(p) == pytest.approx(expected, rel=1e-3)
    zero_shot_vs_best_of_n = rows[0]
    assert zero_shot_vs_best_of_n[3:6] == ["0", "4", "0"]
    assert float(zero_shot_vs_best_of_n[6]) == pytest.approx(0.125)


def test_plots_are_real_pngs_and_linked(reported):
    out, _ = reported
    text = (out / "report.md").read_text()
    for name in ["accuracy_vs_budget", "cost_breakdown", "reward_over_simulations"]:
        assert f"![{name}]({name}.png)" in text
        height, width, _ = imread(out / f"{name}.png").shape
        assert height > 200 and width > 300


def test_accuracy_at_budget_is_the_best_so_far_answer(reported):
    _, records = reported
    best_of_n = next(r for r in records if r["method"] == "best-of-n")
    # Programs: WRONG (0), HALF (0.5), WRONG (0), GOOD (1.0, the answer, passes hidden).
    assert [n["reward"] for n in best_of_n["trace"]["nodes"][1:]] == [0.0, 0.5, 0.0, 1.0]
    assert [passes_at_budget(best_of_n, b) for b in range(1, 6)] == [0, 0, 0, 1, 1]
    zero_shot = next(r for r in records if r["method"] == "zero-shot")
    assert not any(passes_at_budget(zero_shot, b) for b in range(1, 5))


def test_reward_over_simulations_carries_finished_searches(reported):
    _, records = reported
    best, fresh, searching = reward_by_simulation(records, "pot")
    # Every PoT search: simulation 1 writes WRONG, HALF, WRONG (sampled) and GOOD (committed).
    assert best == [1.0] and searching == [4]
    assert fresh == [pytest.approx((0 + 0.5 + 0 + 1) / 4)]


def test_report_cli_and_its_errors(reported, tmp_path):
    runner = CliRunner()
    out, _ = reported
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0 and "report written to" in result.output
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and re.search(r"error: .* has no run.json", result.output)
    result = runner.invoke(app, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "is not a folder" in result.output
