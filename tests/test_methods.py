"""Search loop and baselines: budgets, early termination, max depth, hidden tests kept hidden.

The policy here is scripted (it writes given programs) so the arithmetic is exact; the programs
run in the real sandbox. The real model runs these paths in test_solve_e2e.py.
"""

import itertools

import pytest

from pot.budget import Budget, Ledger
from pot.methods import METHODS, UnknownMethodError, method_config, solve
from pot.search import SearchConfig, run_search
from pot.tasks import Task, Test
from tests.scripted import ScriptedPolicy

GOOD = "def add(a, b):\n    return a + b"
WRONG = "def add(a, b):\n    return a - b"


def add_task(hidden: list[Test] | None = None) -> Task:
    public = [Test("assert", "assert add(1, 2) == 3")]
    return Task(
        id="t/add",
        prompt="Add two numbers.",
        entry_point="add",
        public_tests=public,
        hidden_tests=hidden or public + [Test("assert", "assert add(-1, 1) == 0")],
    )


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("programs", [1, 5, 7])
def test_program_budget_is_respected_exactly(sandbox, method, programs):
    result = solve(
        add_task(), ScriptedPolicy([WRONG]), sandbox, method, budget=Budget(programs=programs)
    )
    expected = 1 if method == "zero-shot" else programs
    assert result.costs.programs == expected
    assert len(result.trace["nodes"]) - 1 == expected
    assert result.costs.executions == expected


def test_token_budget_is_respected_exactly(sandbox):
    config = method_config("search-only")
    result = solve(
        add_task(),
        ScriptedPolicy([WRONG], tokens=10),
        sandbox,
        "search-only",
        config=config,
        budget=Budget(tokens=45),
    )
    # 3 sampled + 1 committed program of 10 tokens; 5 tokens left: 3 programs of 5 // 3 = 1
    # token; 2 left: the committed program gets 2.
    assert result.costs.generated_tokens == 45
    assert result.costs.programs == 8


def test_simulation_budget_and_paper_default_of_20(sandbox):
    result = solve(
        add_task(), ScriptedPolicy([WRONG]), sandbox, "search-only", budget=Budget(simulations=3)
    )
    assert max(n["simulation"] for n in result.trace["nodes"]) == 3
    assert result.costs.programs == 3 * 4
    config = method_config("search-only", {"search.max_depth": 50})
    result = solve(add_task(), ScriptedPolicy([WRONG]), sandbox, "search-only", config=config)
    assert max(n["simulation"] for n in result.trace["nodes"]) == 20


def test_seconds_budget_stops_at_the_first_check_past_it(sandbox):
    ticks = itertools.count(step=10.0)
    ledger = Ledger(Budget(seconds=35), clock=lambda: next(ticks))
    tree = run_search(add_task(), ScriptedPolicy([WRONG]), sandbox, ledger, SearchConfig())
    assert ledger.elapsed() >= 35
    assert 0 < max(n.simulation for n in tree.nodes) < 20


@pytest.mark.parametrize("method", ["best-of-n", "self-repair", "search-only", "pot"])
def test_early_termination_on_the_first_public_pass(sandbox, method):
    policy = ScriptedPolicy([WRONG, WRONG, WRONG, WRONG, GOOD])
    result = solve(add_task(), policy, sandbox, method, budget=Budget(programs=40))
    assert result.public_reward == 1.0 and result.hidden_passed
    assert result.first_solved_program == 5
    assert result.costs.programs <= 8  # stops within the batch that found it


def test_max_depth_is_honoured(sandbox):
    config = method_config("search-only", {"search.max_depth": 2})
    result = solve(
        add_task(),
        ScriptedPolicy([WRONG]),
        sandbox,
        "search-only",
        config=config,
        budget=Budget(programs=200),
    )
    depths = [n["depth"] for n in result.trace["nodes"]]
    assert max(depths) == 2
    config = method_config("search-only", {"search.max_depth": 1})
    result = solve(add_task(), ScriptedPolicy([WRONG]), sandbox, "search-only", config=config)
    assert result.costs.programs == 4  # the root is expanded once and nothing else can be


@pytest.mark.parametrize("method", list(METHODS))
def test_the_method_never_sees_hidden_tests(sandbox, method):
    secret = Test("assert", "assert add(2, 2) == 'SECRET-HIDDEN-VALUE'")
    policy = ScriptedPolicy([GOOD])
    result = solve(add_task(hidden=[secret]), policy, sandbox, method, budget=Budget(programs=6))
    assert result.public_reward == 1.0
    assert not result.hidden_passed
    assert not any("SECRET-HIDDEN-VALUE" in p for p in policy.prompts)
    assert not any("SECRET-HIDDEN-VALUE" in n["feedback"] for n in result.trace["nodes"])


def test_oracle_feedback_comes_from_hidden_tests_and_is_recorded(sandbox):
    secret = Test("assert", "assert add(2, 2) == 5")
    policy = ScriptedPolicy([GOOD])
    result = solve(
        add_task(hidden=[secret]),
        policy,
        sandbox,
        "self-repair",
        budget=Budget(programs=2),
        oracle=True,
    )
    assert result.oracle and result.public_reward == 0.0
    assert "add(2, 2) == 5" in policy.prompts[-1]


def test_unknown_method_and_option_are_clear_errors():
    with pytest.raises(UnknownMethodError, match="choose one of"):
        method_config("beam")
    with pytest.raises(ValueError, match="unknown option 'search.width'"):
        method_config("pot", {"search.width": 3})
    assert method_config("pot", {"search.k": "8"}).search.k == 8
    # the method's own name may lead, as in `pot bench --set self-repair.rounds=12`
    assert method_config("self-repair", {"self-repair.rounds": "12"}).rounds == 12
    with pytest.raises(ValueError, match="unknown option 'pot.rounds'"):
        method_config("self-repair", {"pot.rounds": 3})


def test_budget_parse_errors():
    assert Budget.parse("programs=12,seconds=2.5") == Budget(programs=12, seconds=2.5)
    with pytest.raises(ValueError, match="NAME=VALUE"):
        Budget.parse("widgets=3")
    with pytest.raises(ValueError, match="needs a whole number"):
        Budget.parse("programs=many")
