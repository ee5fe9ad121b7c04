"""Pareto fronts, sorting, crowding and hypervolume against hand-made fronts and brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nacos.errors import NacosError
from nacos.results.pareto import (
    Objective,
    as_objectives,
    best_under_budgets,
    crowding_distance,
    dominates,
    hypervolume,
    hypervolume_2d,
    non_dominated_sort,
    pareto_front,
)
from tests.nacos.nb201_objectives import TABLE_MISSING, table

MAXMIN = ["max", "min"]                 # (accuracy, latency_ms)

# A hand-made set: (accuracy, latency). Fronts worked out on paper.
POINTS = [
    (90.0, 10.0),   # 0 front 1
    (80.0, 5.0),    # 1 front 1
    (85.0, 12.0),   # 2 dominated by 0 and by 7, which is itself in front 2 -> front 3
    (70.0, 4.0),    # 3 front 1
    (80.0, 5.0),    # 4 equal to 1: front 1 too (equal points do not dominate)
    (60.0, 20.0),   # 5 dominated by 2 -> front 4
    (75.0, 6.0),    # 6 dominated by 1 -> front 2
    (90.0, 11.0),   # 7 dominated by 0 (same accuracy, slower) -> front 2
]


def test_dominates_mixed_senses() -> None:
    assert dominates((90, 5), (80, 6), MAXMIN)
    assert dominates((90, 5), (90, 6), MAXMIN)
    assert not dominates((90, 5), (90, 5), MAXMIN)
    assert not dominates((90, 7), (80, 6), MAXMIN)
    assert dominates((1, 2), (2, 3), ["min", "min"]) and not dominates((1, 2), (2, 3), ["max", "max"])


def test_non_dominated_sort_hand_made() -> None:
    assert non_dominated_sort(POINTS, MAXMIN) == [[0, 1, 3, 4], [6, 7], [2], [5]]
    assert pareto_front(POINTS, MAXMIN) == [0, 1, 3, 4]
    # With the senses flipped, the set sorts differently: (60, 20) is then best on both.
    assert pareto_front(POINTS, ["min", "max"]) == [5]
    assert non_dominated_sort([], MAXMIN) == [] and pareto_front(np.empty((0, 2)), MAXMIN) == []


def test_pareto_front_three_objectives_hand_made() -> None:
    pts = [(1, 1, 1), (0, 2, 2), (2, 0, 2), (2, 2, 0), (2, 2, 2), (1, 1, 1), (1, 2, 1)]
    assert pareto_front(pts, ["min"] * 3) == [0, 1, 2, 3, 5]
    assert non_dominated_sort(pts, ["min"] * 3) == [[0, 1, 2, 3, 5], [6], [4]]


points_2d = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=0, max_size=25)
points_3d = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4)), min_size=0, max_size=20)


def _brute_front(pts, senses):
    return [i for i, p in enumerate(pts) if not any(dominates(q, p, senses) for q in pts)]


@settings(max_examples=150, deadline=None)
@given(points_2d, st.sampled_from([["max", "min"], ["min", "min"], ["max", "max"]]))
def test_front_matches_definition_2d(pts, senses) -> None:
    assert pareto_front(pts, senses) == _brute_front(pts, senses)
    fronts = non_dominated_sort(pts, senses)
    assert (fronts[0] if fronts else []) == _brute_front(pts, senses)
    assert sorted(i for f in fronts for i in f) == list(range(len(pts)))
    for a, b in itertools.pairwise(fronts):     # every member of a later front is dominated by an earlier one
        assert all(any(dominates(pts[i], pts[j], senses) for i in a) for j in b)


@settings(max_examples=100, deadline=None)
@given(points_3d)
def test_front_matches_definition_3d(pts) -> None:
    senses = ["max", "min", "min"]
    assert pareto_front(pts, senses) == _brute_front(pts, senses)


def test_hypervolume_2d_hand_made() -> None:
    # Accuracy (max) vs latency (min), reference (0.5, 20). Staircase by latency: from 2 to 5 ms the
    # dominated accuracy span is 0.6-0.5, from 5 to 10 it is 0.8-0.5, from 10 to 20 it is 0.9-0.5:
    # 3*0.1 + 5*0.3 + 10*0.4 = 5.8
    front = [(0.9, 10.0), (0.8, 5.0), (0.6, 2.0)]
    assert hypervolume(front, MAXMIN, (0.5, 20.0)) == pytest.approx(5.8)
    assert hypervolume_2d(front, MAXMIN, (0.5, 20.0)) == pytest.approx(5.8)
    # Dominated points, duplicates, and points outside the reference add nothing.
    more = front + [(0.7, 8.0), (0.8, 5.0), (0.95, 25.0), (0.4, 1.0)]
    assert hypervolume(more, MAXMIN, (0.5, 20.0)) == pytest.approx(5.8)
    assert hypervolume([], MAXMIN, (0.5, 20.0)) == 0.0
    assert hypervolume([(0.5, 2.0)], MAXMIN, (0.5, 20.0)) == 0.0   # on the reference: no volume


def test_hypervolume_3d_hand_made() -> None:
    assert hypervolume([(0, 0, 0)], ["min"] * 3, (1, 2, 3)) == pytest.approx(6.0)
    # Boxes [0,2]x[0,2]x[1,2] (4) and [1,2]x[1,2]x[0,2] (2) overlap in [1,2]^3 (1): 5
    assert hypervolume([(0, 0, 1), (1, 1, 0)], ["min"] * 3, (2, 2, 2)) == pytest.approx(5.0)
    # The same with accuracy-like maximised axes mirrored: (max, min, max)
    assert hypervolume([(0, 0, -1), (-1, 1, 0)], ["max", "min", "max"], (-2, 2, -2)) == pytest.approx(5.0)


def _brute_hypervolume(pts, ref):
    """Union of boxes [p, ref] by coordinate compression (minimisation): exact, slow, obviously right."""
    pts = [p for p in pts if all(x < r for x, r in zip(p, ref))]
    if not pts:
        return 0.0
    m = len(ref)
    grids = [sorted({p[k] for p in pts} | {ref[k]}) for k in range(m)]
    total = 0.0
    for cell in itertools.product(*(range(len(g) - 1) for g in grids)):
        low = [grids[k][cell[k]] for k in range(m)]
        if any(all(p[k] <= low[k] for k in range(m)) for p in pts):
            total += math.prod(grids[k][cell[k] + 1] - low[k] for k in range(m))
    return total


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(*[st.integers(0, 5)] * 4), max_size=10), st.integers(2, 4))
def test_hypervolume_matches_brute_force(pts, m) -> None:
    pts = [p[:m] for p in pts]
    ref = (6,) * m
    assert hypervolume(pts, ["min"] * m, ref) == pytest.approx(_brute_hypervolume(pts, ref))


def test_crowding_distance_hand_made() -> None:
    # A 2-D front sorted by the first objective: 0, 1, 3, 4 on x and 4, 3, 1, 0 on y (ranges 4 and 4).
    front = [(0, 4), (1, 3), (3, 1), (4, 0)]
    d = crowding_distance(front, ["min", "min"])
    assert math.isinf(d[0]) and math.isinf(d[3])
    assert d[1] == pytest.approx((3 - 0) / 4 + (4 - 1) / 4)
    assert d[2] == pytest.approx((4 - 1) / 4 + (3 - 0) / 4)
    assert np.all(np.isinf(crowding_distance([(1, 2), (2, 1)], ["min", "min"])))


def test_best_under_budgets_hand_made() -> None:
    acc = [90.0, 80.0, 85.0, 70.0, 85.0]
    lat = [10.0, 5.0, 12.0, 4.0, 7.0]
    assert best_under_budgets(acc, lat, [3.0, 4.0, 6.0, 7.0, 11.0, 100.0]) == \
        {3.0: None, 4.0: 3, 6.0: 1, 7.0: 4, 11.0: 0, 100.0: 0}
    # Minimising (e.g. lowest latency under an energy budget) and ties going to the lower constraint.
    assert best_under_budgets([5.0, 5.0, 6.0], [3.0, 2.0, 1.0], [2.5, 10.0], sense="min") == {2.5: 1, 10.0: 1}


def test_bad_input_is_refused_with_a_message() -> None:
    with pytest.raises(NacosError, match="sense"):
        pareto_front([(1, 2)], ["max", "best"])
    with pytest.raises(NacosError, match="NaN"):
        pareto_front([(1, float("nan"))], MAXMIN)
    with pytest.raises(NacosError, match="reference point has 3"):
        hypervolume([(1, 2)], MAXMIN, (0, 1, 2))
    with pytest.raises(NacosError, match="finite"):
        hypervolume([(1, 2)], MAXMIN, (0, float("inf")))
    with pytest.raises(NacosError, match="2 sense"):
        non_dominated_sort([(1, 2, 3)], MAXMIN)
    with pytest.raises(NacosError, match="listed twice"):
        as_objectives(["accuracy", "accuracy:min"])
    assert as_objectives(["accuracy", ("latency_ms", "min"), {"name": "params", "sense": "min"}]) == \
        (Objective("accuracy"), Objective("latency_ms", "min"), Objective("params", "min"))


@pytest.mark.skipif(bool(TABLE_MISSING), reason=TABLE_MISSING or "table present")
def test_nb201_true_front_agrees_with_pareto_module() -> None:
    """The table's own 2-D front (archspace cannot import nacos) equals `pareto_front` on all 15,625 rows."""
    t = table()
    for device in t.devices:
        pts = np.column_stack([t.accuracy_columns["cifar10"], t.latency_columns[device]])
        assert sorted(t.pareto_front("cifar10", device)) == pareto_front(pts, MAXMIN), device
