"""Quality of a latency predictor, as one function shared by the benchmarks, the tests and the search.

`latency_metrics(y_true, y_pred)` returns Kendall tau (tau-b, ties handled as scipy does), Spearman's
rho, pairwise ordering accuracy, top-k recall of the truly best, MAPE and the share of predictions
within +-10 % (nn-Meter's headline figure). Lower latency is better everywhere: "the best" are the
k smallest true values.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from costmodels.errors import CostModelError

__all__ = [
    "kendall_tau",
    "spearman",
    "pairwise_accuracy",
    "top_k_recall",
    "mape",
    "within_pct",
    "latency_metrics",
]


def _pair(y_true: Sequence[float], y_pred: Sequence[float], *, min_len: int = 2) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise CostModelError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    if t.size < min_len:
        raise CostModelError(f"need at least {min_len} values to score a predictor, got {t.size}")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise CostModelError("y_true / y_pred contain NaN or infinite values; drop failed measurements first")
    return t, p


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties sharing the mean of their positions."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size, dtype=np.float64)
    sx = x[order]
    i = 0
    while i < x.size:
        j = i
        while j + 1 < x.size and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return ranks


def _pair_signs(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    iu = np.triu_indices(t.size, k=1)
    return np.sign(t[iu[0]] - t[iu[1]]), np.sign(p[iu[0]] - p[iu[1]])


def kendall_tau(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Kendall's tau-b. O(n^2) memory in pairs: fine to a few thousand points; larger inputs are
    scored on the O(n log n) path of scipy."""
    t, p = _pair(y_true, y_pred)
    if t.size > 3000:
        from scipy import stats

        return float(stats.kendalltau(t, p).statistic)
    st, sp = _pair_signs(t, p)
    concordant_minus_discordant = float(np.sum(st * sp))
    n_t = float(np.count_nonzero(st))  # pairs not tied in y_true
    n_p = float(np.count_nonzero(sp))
    if n_t == 0 or n_p == 0:
        return float("nan")
    return concordant_minus_discordant / math.sqrt(n_t * n_p)


def spearman(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Spearman's rho: Pearson correlation of the average ranks."""
    t, p = _pair(y_true, y_pred)
    rt, rp = _ranks(t), _ranks(p)
    rt -= rt.mean()
    rp -= rp.mean()
    denom = math.sqrt(float(np.dot(rt, rt)) * float(np.dot(rp, rp)))
    return float(np.dot(rt, rp) / denom) if denom else float("nan")


def pairwise_accuracy(y_true: Sequence[float], y_pred: Sequence[float], *, max_pairs: int = 2_000_000,
                      seed: int = 0) -> float:
    """Share of pairs with distinct true values that the prediction orders the same way (a predicted
    tie counts half). Above `max_pairs` pairs, a fixed-seed sample of pairs is scored."""
    t, p = _pair(y_true, y_pred)
    n = t.size
    if n * (n - 1) // 2 <= max_pairs:
        st, sp = _pair_signs(t, p)
    else:
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, max_pairs)
        j = rng.integers(0, n, max_pairs)
        keep = i != j
        st, sp = np.sign(t[i[keep]] - t[j[keep]]), np.sign(p[i[keep]] - p[j[keep]])
    mask = st != 0
    if not mask.any():
        return float("nan")
    agree = np.where(sp[mask] == 0, 0.5, (st[mask] == sp[mask]).astype(np.float64))
    return float(agree.mean())


def top_k_recall(y_true: Sequence[float], y_pred: Sequence[float], k: int = 5) -> float:
    """|predicted k best  intersect  true k best| / k (smaller is better; ties in y_true broken by index)."""
    t, p = _pair(y_true, y_pred, min_len=1)
    if k < 1:
        raise CostModelError(f"k must be >= 1, got {k}")
    k = min(k, t.size)
    true_best = set(np.argsort(t, kind="mergesort")[:k].tolist())
    pred_best = set(np.argsort(p, kind="mergesort")[:k].tolist())
    return len(true_best & pred_best) / k


def mape(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Mean absolute percentage error, as a fraction (0.05 = 5 %)."""
    t, p = _pair(y_true, y_pred, min_len=1)
    if np.any(t <= 0):
        raise CostModelError("MAPE needs strictly positive true latencies")
    return float(np.mean(np.abs(p - t) / t))


def within_pct(y_true: Sequence[float], y_pred: Sequence[float], pct: float = 10.0) -> float:
    """Share (0..1) of predictions within +-pct % of the true value."""
    t, p = _pair(y_true, y_pred, min_len=1)
    if np.any(t <= 0):
        raise CostModelError("within_pct needs strictly positive true latencies")
    return float(np.mean(np.abs(p - t) <= (pct / 100.0) * t + 1e-12 * t))


def latency_metrics(y_true: Sequence[float], y_pred: Sequence[float], *, k: int = 5) -> dict[str, float]:
    """Every figure at once, as a JSON-ready dict."""
    t, p = _pair(y_true, y_pred)
    return {
        "n": int(t.size),
        "kendall_tau": kendall_tau(t, p),
        "spearman": spearman(t, p),
        "pairwise_accuracy": pairwise_accuracy(t, p),
        f"top{k}_recall": top_k_recall(t, p, k),
        "mape": mape(t, p) if np.all(t > 0) else float("nan"),
        "within_10pct": within_pct(t, p, 10.0) if np.all(t > 0) else float("nan"),
    }
