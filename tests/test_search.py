import math

import pytest

from pot.search import Tree


def build(rewards_by_parent: list[tuple[int, float, float]]) -> Tree:
    """(parent id, reward, mean log-prob) per new node, in creation order."""
    tree = Tree()
    for parent, reward, logprob in rewards_by_parent:
        tree.add_child(tree.nodes[parent], "sampled", reward=reward, mean_logprob=logprob)
    return tree


def test_child_starts_with_one_visit_and_its_reward_and_backs_up_to_the_root():
    tree = build([(0, 0.5, -1.0), (0, 0.0, -1.0), (1, 1.0, -1.0)])
    a, b, c = tree.nodes[1:]
    assert (a.visits, b.visits, c.visits) == (2, 1, 1)
    assert a.value_sum == pytest.approx(1.5) and a.q == pytest.approx(0.75)
    assert tree.root.visits == 3 and tree.root.value_sum == pytest.approx(1.5)


def test_priors_are_softmax_of_sibling_mean_logprobs_and_renormalise_on_new_sibling():
    tree = build([(0, 0.0, -1.0), (0, 0.0, -2.0)])
    e1, e2 = math.exp(-1.0), math.exp(-2.0)
    assert tree.nodes[1].prior == pytest.approx(e1 / (e1 + e2))
    tree.add_child(tree.root, "committed", mean_logprob=-0.5)
    e3 = math.exp(-0.5)
    assert [n.prior for n in tree.nodes[1:]] == pytest.approx(
        [e1 / (e1 + e2 + e3), e2 / (e1 + e2 + e3), e3 / (e1 + e2 + e3)]
    )


def test_puct_selects_the_child_the_formula_says():
    # Child 1: high Q, low prior; child 2: low Q, high prior.
    tree = build([(0, 0.6, -3.0), (0, 0.1, 0.0)])
    c = 1.414
    root, one, two = tree.nodes
    scores = [n.q + c * n.prior * math.sqrt(root.visits) / (1 + n.visits) for n in (one, two)]
    expected = (one, two)[scores.index(max(scores))]
    assert tree.select(c, max_depth=4) is expected
    # With no exploration term the higher Q wins.
    assert tree.select(0.0, max_depth=4) is one


def test_puct_by_hand_on_a_deeper_tree():
    tree = build([(0, 0.5, -1.0), (0, 0.2, -1.0), (1, 0.0, -1.0), (1, 0.3, -1.0)])
    # root N=4; child1 N=3 W=0.8 Q=0.2667 P=0.5; child2 N=1 W=0.2 Q=0.2 P=0.5
    # c=1: child1 = 0.2667 + 0.5*2/4 = 0.5167; child2 = 0.2 + 0.5*2/2 = 0.7 -> child2 (a leaf)
    assert tree.select(1.0, max_depth=4) is tree.nodes[2]
    # c=0.1: child1 = 0.2667 + 0.025 = 0.2917; child2 = 0.2 + 0.05 = 0.25 -> descend into child1
    # there: N=3, kids Q 0.0 and 0.3, equal priors -> node 4
    assert tree.select(0.1, max_depth=4) is tree.nodes[4]


def test_max_depth_and_solved_leaves_are_not_selected():
    tree = build([(0, 1.0, -1.0), (0, 0.2, -1.0)])
    assert tree.select(1.414, max_depth=4) is tree.nodes[2]  # the solved child is terminal
    assert tree.select(1.414, max_depth=1) is None  # every child is at max depth


def test_empty_tree_selects_the_root_and_max_depth_zero_selects_nothing():
    tree = Tree()
    assert tree.select(1.414, max_depth=3) is tree.root
    assert tree.select(1.414, max_depth=0) is None


def test_best_prefers_highest_reward_then_newest():
    tree = build([(0, 0.5, -1.0), (0, 0.5, -1.0), (1, 0.2, -1.0)])
    assert tree.best() is tree.nodes[2]
    assert Tree().best() is None


def test_path_lists_programs_from_the_top():
    tree = build([(0, 0.1, -1.0), (1, 0.2, -1.0), (2, 0.3, -1.0)])
    assert [n.id for n in tree.path(tree.nodes[3])] == [1, 2, 3]
    assert tree.path(tree.root) == []
