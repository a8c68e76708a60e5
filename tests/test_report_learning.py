"""`pot report`'s learning section, hidden curves and overfitting rate, rendered from a small run
(scripted programs, the real sandbox and the real GRPO trainer) and recomputed here: the hidden
verdicts by running each program on the hidden tests again."""

from functools import partial

import pytest
from matplotlib.image import imread

from pot.bench import BenchSpec, SerialExecutor, run_bench
from pot.bench.report import (
    accuracy_by_budget,
    budget_points,
    compare_at_equal_seconds,
    equal_seconds_cut,
    passes_at_seconds,
    seconds_points,
    some_passes_at_budget,
    write_report,
)
from tests.scripted import ScriptedPolicy
from tests.test_bench import GOOD, HALF, WRONG, bench_tasks
from tests.test_report import table_rows

OVERFIT = "def add(a, b):\n    return a + b if a > 0 else 0"  # t/one: public pass, hidden fail
FOUR = "def add(a, b):\n    return 4"  # half the public tests, no hidden one
PROGRAMS = [WRONG, HALF, WRONG, WRONG, FOUR, WRONG, OVERFIT, WRONG, GOOD]
SPEC = BenchSpec(tasks="tests", methods=["search-only", "pot"], budget="programs=12", seeds=[0])


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    out = tmp_path_factory.mktemp("learning")
    executor = SerialExecutor(partial(ScriptedPolicy, PROGRAMS))
    records = run_bench(out, SPEC, bench_tasks(), executor)
    write_report(out)
    return out, (out / "report.md").read_text(), records


def answer_after(record, b):
    programs = record["trace"]["nodes"][1 : b + 1]
    return max(reversed(programs), key=lambda n: n["reward"])["program"]


def test_hidden_curves_are_exact_against_a_fresh_judgement(reported, sandbox):
    _, text, records = reported
    tasks = {t.id: t for t in bench_tasks()}

    def passes(record, program):
        return sandbox.evaluate_task(tasks[record["task_id"]], program, "hidden").all_passed

    def fresh(method, b):
        mine = [r for r in records if r["method"] == method]
        answer = [passes(r, answer_after(r, b)) for r in mine]
        some = [any(passes(r, n["program"]) for n in r["trace"]["nodes"][1 : b + 1]) for r in mine]
        return sum(answer) / len(mine), sum(some) / len(mine)

    most = max(r["costs"]["programs"] for r in records)
    budgets = range(1, most + 1)
    curves = {
        m: list(
            zip(
                accuracy_by_budget(records, m, budgets),
                accuracy_by_budget(records, m, budgets, some_passes_at_budget),
                strict=True,
            )
        )
        for m in SPEC.methods
    }
    for method, curve in curves.items():
        assert curve == [pytest.approx(fresh(method, b)) for b in budgets]
    # On t/two, HALF passes the hidden tests, then FOUR (the same public reward, newer)
    # becomes the answer and does not: the two curves part there.
    assert curves["pot"][4] == (0.0, 0.5) and curves["pot"][3] == (0.5, 0.5)

    points = budget_points(most)
    assert points == [1, 2, 4, 8, most]
    rows = table_rows(text, "| method | curve |")
    assert [row[:2] for row in rows] == [
        [m, curve] for m in SPEC.methods for curve in ("answer so far", "some program")
    ]
    for method, curve, *cells in rows:
        which = 0 if curve == "answer so far" else 1
        assert cells == [f"{curves[method][b - 1][which]:.3f}" for b in points]


def test_overfitting_rate_counts_public_pass_hidden_fail_programs(reported, sandbox):
    _, text, records = reported
    tasks = {t.id: t for t in bench_tasks()}
    for method, programs, public, failing, rate in table_rows(text, "| method | distinct programs"):
        distinct = {
            (r["task_id"], n["program"]): n["reward"]
            for r in records
            if r["method"] == method
            for n in r["trace"]["nodes"][1:]
        }
        public_pass = [key for key, reward in distinct.items() if reward >= 1.0]
        fail = [
            key
            for key in public_pass
            if not sandbox.evaluate_task(tasks[key[0]], key[1], "hidden").all_passed
        ]
        assert [programs, public, failing] == [
            str(len(distinct)),
            str(len(public_pass)),
            str(len(fail)),
        ]
        assert float(rate) == pytest.approx(len(fail) / len(public_pass), abs=5e-4)
    assert any(int(row[3]) > 0 for row in table_rows(text, "| method | distinct programs"))


def test_learning_section_counts_the_updates_of_the_trace(reported):
    _, text, records = reported
    (row,) = table_rows(text, "| method | problems | groups |")
    pot = [r for r in records if r["method"] == "pot"]
    updates = [u for r in pot for u in r["trace"]["updates"]]
    applied = sum(u["applied"] for u in updates)
    assert row[:5] == ["pot", "2", str(len(updates)), str(applied), f"{applied / 2:.2f}"]
    assert applied == sum(r["costs"]["gradient_steps"] for r in pot) // 3 > 0
    assert row[5] == str(sum(any(u["applied"] for u in r["trace"]["updates"]) for r in pot))


def test_reward_by_policy_version_recomputed_from_the_nodes(reported):
    _, text, records = reported
    rows = table_rows(text, "| method | version |")
    pot = [r for r in records if r["method"] == "pot"]
    assert [row[1] for row in rows] == ["v0", "v1", "v2"]  # the policy evolved
    for method, version, problems, programs, mean_reward, change, _ in rows:
        v = int(version.removeprefix("v"))
        sampled = [
            [
                n["reward"]
                for n in r["trace"]["nodes"][1:]
                if (n["creator"], n["policy_version"]) == ("sampled", v)
            ]
            for r in pot
        ]
        flat = [x for one in sampled for x in one]
        assert (method, problems) == ("pot", str(sum(bool(one) for one in sampled)))
        assert programs == str(len(flat))
        assert float(mean_reward) == pytest.approx(sum(flat) / len(flat), abs=5e-4)
        assert (change == "-") == (v == 0)


def mean(values):
    return sum(values) / len(values)


def rewards_at(record, simulations):
    return [n["reward"] for n in record["trace"]["nodes"][1:] if n["simulation"] in simulations]


def test_pot_against_search_only_at_each_simulation(reported):
    _, text, records = reported
    keyed = {(r["method"], r["task_id"]): r for r in records}
    tasks = sorted({r["task_id"] for r in records})
    rows = table_rows(text, "| simulation | both searching |")
    assert [row[0] for row in rows] == ["1", "2", "3"]
    for row in rows:
        s = int(row[0])
        shared = [t for t in tasks if all(rewards_at(keyed[(m, t)], [s]) for m in SPEC.methods)]
        assert row[1] == str(len(shared))
        for method, new, best in zip(["pot", "search-only"], row[2:4], row[4:6], strict=True):
            means = [mean(rewards_at(keyed[(method, t)], [s])) for t in shared]
            if new != "-":
                assert float(new) == pytest.approx(mean(means), abs=5e-4)
            bests = [max(rewards_at(keyed[(method, t)], range(1, s + 1))) for t in tasks]
            assert float(best) == pytest.approx(sum(bests) / len(tasks), abs=5e-4)
    assert rows[2][1] == "1"  # t/one was solved in simulation 2


def test_the_accuracy_plot_has_both_curves(reported):
    out, text, _ = reported
    assert "![accuracy_vs_budget](accuracy_vs_budget.png)" in text
    assert "Right: the share where some program among the first b passes them" in text
    height, width, _ = imread(out / "accuracy_vs_budget.png").shape
    assert width > 1.8 * height  # two panels side by side
    assert "![accuracy_vs_seconds](accuracy_vs_seconds.png)" in text
    height, width, _ = imread(out / "accuracy_vs_seconds.png").shape
    assert height > 200 and width > 300


def timed_record(method, task, wall, programs):
    """A result whose programs (text, public reward, written at s, passes hidden) are given."""
    nodes = [{"program": ""}] + [
        {"program": text, "reward": reward, "created_s": at} for text, reward, at, _ in programs
    ]
    verdicts = [{"nodes": [i], "hidden_passed": p[3]} for i, p in enumerate(programs, start=1)]
    return {
        "method": method,
        "task_id": task,
        "seed": 0,
        "costs": {"wall_s": wall},
        "trace": {"nodes": nodes},
        "posthoc": {"programs": verdicts},
    }


def test_equal_seconds_judges_both_at_the_faster_ones_finish():
    records = [
        # t1: the slow method finds the right program at 80 s, after the fast one stopped (10 s)
        timed_record("slow", "t1", 100.0, [("bad", 0.5, 4.0, False), ("good", 1.0, 80.0, True)]),
        timed_record("fast", "t1", 10.0, [("bad", 0.5, 9.0, False)]),
        # t2: the slow method has it at 5 s
        timed_record("slow", "t2", 60.0, [("good", 1.0, 5.0, True)]),
        timed_record("fast", "t2", 12.0, [("bad", 0.0, 3.0, False)]),
        # t3: the fast method passes; the slow one has nothing written by 8 s
        timed_record("slow", "t3", 50.0, [("good", 1.0, 20.0, True)]),
        timed_record("fast", "t3", 8.0, [("good", 1.0, 7.0, True)]),
        # t4: both pass, the slow one 1.9 s after the fast one finished: within the slack
        timed_record("slow", "t4", 22.0, [("good", 1.0, 21.9, True)]),
        timed_record("fast", "t4", 20.0, [("good", 1.0, 19.5, True)]),
        # t5: 10 % of a long solve is more than 2 s: 9 s after the fast one's 100 s still counts
        timed_record("slow", "t5", 120.0, [("good", 1.0, 109.0, True)]),
        timed_record("fast", "t5", 100.0, [("good", 1.0, 99.0, True)]),
    ]
    assert equal_seconds_cut(7.0) == 9.0 and equal_seconds_cut(100.0) == pytest.approx(110.0)
    assert passes_at_seconds(records[0], 79.9) is False
    assert passes_at_seconds(records[0], 80.0) is True
    assert passes_at_seconds(records[4], 8.0) is False
    c = compare_at_equal_seconds(records, "slow", "fast")
    assert (c.problems, c.wins, c.losses, c.ties) == (5, 1, 1, 3)
    assert seconds_points(records) == [15.0, 30.0, 60.0, 120.0]


def test_equal_seconds_section_recomputed_from_the_records(reported):
    _, text, records = reported
    rows = table_rows(text, "| method | mean wall s |")
    points = seconds_points(records)
    assert [row[0] for row in rows] == SPEC.methods
    for method, wall, *cells in rows:
        mine = [r for r in records if r["method"] == method]
        assert float(wall) == pytest.approx(
            sum(r["costs"]["wall_s"] for r in mine) / len(mine), abs=0.05
        )
        expected = [sum(passes_at_seconds(r, t) for r in mine) / len(mine) for t in points]
        assert cells == [f"{v:.3f}" for v in expected]
    # at the longest solve every method holds its final answer: the pass@1 of the run
    for method, _, *cells in rows:
        mine = [r for r in records if r["method"] == method]
        assert float(cells[-1]) == pytest.approx(
            sum(r["hidden_passed"] for r in mine) / len(mine), abs=5e-4
        )
    (paired,) = table_rows(text, "| first | second | problems at equal seconds |")
    c = compare_at_equal_seconds(records, *SPEC.methods)
    assert paired[2:6] == [str(c.problems), str(c.wins), str(c.losses), str(c.ties)]
