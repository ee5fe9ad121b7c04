import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from costmodels import (
    CostModelError,
    kendall_tau,
    latency_metrics,
    mape,
    pairwise_accuracy,
    spearman,
    top_k_recall,
    within_pct,
)

TRUE = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
PRED = [1.5, 1.0, 3.5, 3.0, 6.0, 5.5, 9.0, 7.0]
TIED_T = [1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 4.0]
TIED_P = [2.0, 1.0, 2.0, 2.0, 5.0, 4.0, 4.0]


@pytest.mark.parametrize("t,p", [(TRUE, PRED), (TIED_T, TIED_P), (TRUE, TRUE[::-1])])
def test_rank_correlations_equal_scipy(t, p):
    assert kendall_tau(t, p) == pytest.approx(stats.kendalltau(t, p).statistic, abs=1e-12)
    assert spearman(t, p) == pytest.approx(stats.spearmanr(t, p).statistic, abs=1e-12)


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=3, max_size=40))
def test_rank_correlations_equal_scipy_random(pairs):
    t = [float(a) for a, _ in pairs]
    p = [float(b) for _, b in pairs]
    ref_tau = stats.kendalltau(t, p).statistic
    ours = kendall_tau(t, p)
    assert (math.isnan(ours) and math.isnan(ref_tau)) or ours == pytest.approx(ref_tau, abs=1e-9)
    ref_rho = stats.spearmanr(t, p).statistic
    rho = spearman(t, p)
    assert (math.isnan(rho) and math.isnan(ref_rho)) or rho == pytest.approx(ref_rho, abs=1e-9)


def test_pairwise_accuracy_by_hand():
    # pairs (i<j): 28; discordant: (0,1), (2,3), (4,5), (6,7) -> 24 / 28
    assert pairwise_accuracy(TRUE, PRED) == pytest.approx(24 / 28)
    assert pairwise_accuracy(TRUE, TRUE) == 1.0
    assert pairwise_accuracy(TRUE, TRUE[::-1]) == 0.0
    # a predicted tie counts half
    assert pairwise_accuracy([1, 2], [3, 3]) == 0.5


def test_pairwise_accuracy_sampled_path_close_to_exact():
    rng = np.random.default_rng(0)
    t = rng.random(400)
    p = t + rng.normal(0, 0.2, 400)
    exact = pairwise_accuracy(t, p)
    sampled = pairwise_accuracy(t, p, max_pairs=20_000)
    assert abs(exact - sampled) < 0.02


def test_top_k_recall_and_errors():
    assert top_k_recall(TRUE, PRED, k=2) == 1.0      # {0, 1} both ways
    assert top_k_recall(TRUE, PRED, k=3) == pytest.approx(2 / 3)  # pred best 3: {1, 0, 3}
    assert top_k_recall(TRUE, TRUE[::-1], k=2) == 0.0
    assert mape([100.0, 200.0], [110.0, 180.0]) == pytest.approx(0.1)
    assert within_pct([100.0, 200.0, 10.0], [110.0, 150.0, 9.5]) == pytest.approx(2 / 3)
    m = latency_metrics(TRUE, PRED, k=3)
    assert set(m) == {"n", "kendall_tau", "spearman", "pairwise_accuracy", "top3_recall", "mape", "within_10pct"}


@pytest.mark.parametrize("t,p", [([1.0, float("nan")], [1.0, 2.0]), ([1.0, 2.0], [1.0]), ([1.0], [1.0]),
                                 ([1.0, 2.0], [1.0, float("inf")])])
def test_bad_input_is_a_clear_error(t, p):
    with pytest.raises(CostModelError):
        latency_metrics(t, p)


def test_mape_needs_positive_truth():
    with pytest.raises(CostModelError, match="positive"):
        mape([0.0, 1.0], [1.0, 1.0])
