"""Pareto fronts, non-dominated sorting, crowding, hypervolume and the best candidate under a budget.

Pure functions over a matrix of objective values (one row per candidate, one column per objective)
and a *sense* per objective (``"max"`` or ``"min"``), in the manner of Optuna's front over trials and
pymoo's indicators: nothing here keeps state or knows where the values came from.

Conventions:
- `a` dominates `b` when `a` is at least as good in every objective and strictly better in one.
  Two equal points do not dominate each other, so both stay on a front.
- Internally everything is turned into minimisation by negating the ``"max"`` columns.
- The hypervolume is the measure of the region dominated by the front and bounded by a stated
  reference point (given in the objectives' own units and senses). A point that is not strictly better
  than the reference in every objective adds nothing. The reference must be stated by the caller:
  hypervolumes are comparable only under the same reference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nacos.errors import NacosError

__all__ = [
    "SENSES",
    "Objective",
    "as_objectives",
    "best_under_budgets",
    "crowding_distance",
    "dominates",
    "hypervolume",
    "hypervolume_2d",
    "non_dominated_sort",
    "pareto_front",
]

SENSES = ("max", "min")


@dataclass(frozen=True)
class Objective:
    """One objective: the metric's name and whether larger (``max``) or smaller (``min``) is better."""

    name: str
    sense: str = "max"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise NacosError(f"objective name: must be a non-empty string, got {self.name!r}")
        if self.sense not in SENSES:
            raise NacosError(f"objective {self.name!r}: sense must be 'max' or 'min', got {self.sense!r}")

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "sense": self.sense}


def as_objectives(spec: Iterable[Any]) -> tuple[Objective, ...]:
    """Objectives from `Objective`s, ``(name, sense)`` pairs, ``{"name", "sense"}`` dicts or ``"name:sense"``."""
    out: list[Objective] = []
    for item in spec:
        if isinstance(item, Objective):
            out.append(item)
        elif isinstance(item, str):
            name, _, sense = item.partition(":")
            out.append(Objective(name, sense or "max"))
        elif isinstance(item, Mapping):
            out.append(Objective(item.get("name", ""), item.get("sense", "max")))
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            out.append(Objective(item[0], item[1]))
        else:
            raise NacosError(f"objective: cannot read {item!r}; give (name, sense) or 'name:sense'")
    if not out:
        raise NacosError("objectives: at least one objective is needed")
    names = [o.name for o in out]
    if len(set(names)) != len(names):
        raise NacosError(f"objectives: listed twice in {names}")
    return tuple(out)


def _senses(senses: Sequence[str] | Sequence[Objective], m: int) -> np.ndarray:
    names = [s.sense if isinstance(s, Objective) else s for s in senses]
    if len(names) != m:
        raise NacosError(f"{m} objective column(s) but {len(names)} sense(s) {list(names)}")
    bad = [s for s in names if s not in SENSES]
    if bad:
        raise NacosError(f"sense must be 'max' or 'min', got {bad}")
    return np.array([-1.0 if s == "max" else 1.0 for s in names])


def _as_min(values: Any, senses: Sequence[str] | Sequence[Objective]) -> np.ndarray:
    """(n, m) values turned into minimisation; NaN is refused (a failed candidate has no values)."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr.reshape(-1, len(senses)) if arr.size else arr.reshape(0, len(senses))
    if arr.ndim != 2:
        raise NacosError(f"objective values: expected an (n, m) matrix, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise NacosError("objective values: NaN found; leave failed candidates out before sorting")
    return arr * _senses(senses, arr.shape[1])


def dominates(a: Sequence[float], b: Sequence[float], senses: Sequence[str]) -> bool:
    """True when `a` is at least as good as `b` everywhere and strictly better somewhere."""
    x, y = _as_min([a, b], senses)
    return bool(np.all(x <= y) and np.any(x < y))


def _dominated_mask(pts: np.ndarray) -> np.ndarray:
    """mask[i, j] = point i dominates point j (minimisation). O(n^2 m) memory: for small sets."""
    le = np.all(pts[:, None, :] <= pts[None, :, :], axis=2)
    lt = np.any(pts[:, None, :] < pts[None, :, :], axis=2)
    return le & lt


def non_dominated_sort(values: Any, senses: Sequence[str] | Sequence[Objective]) -> list[list[int]]:
    """Deb's fast non-dominated sort: the fronts, best first, each a sorted list of row indices.

    O(n^2 m): meant for populations (hundreds), not whole tables; `pareto_front` handles those.
    """
    pts = _as_min(values, senses)
    n = len(pts)
    if n == 0:
        return []
    dom = _dominated_mask(pts)
    counts = dom.sum(axis=0)            # how many points dominate each point
    fronts: list[list[int]] = []
    current = np.flatnonzero(counts == 0)
    while current.size:
        fronts.append([int(i) for i in current])
        counts = counts - dom[current].sum(axis=0)
        counts[current] = -1            # placed
        current = np.flatnonzero(counts == 0)
    return fronts


def pareto_front(values: Any, senses: Sequence[str] | Sequence[Objective]) -> list[int]:
    """Indices (ascending) of the non-dominated rows. Exact; O(n log n) for two objectives."""
    pts = _as_min(values, senses)
    n, m = pts.shape
    if n == 0:
        return []
    if m == 1:
        return [int(i) for i in np.flatnonzero(pts[:, 0] == pts[:, 0].min())]
    if m == 2:
        # Sort by the first objective, then the second; a point is on the front when its second value
        # beats every point with a strictly smaller first value, and it is the best second value among
        # its ties in the first (equal points are all kept).
        order = np.lexsort((pts[:, 1], pts[:, 0]))
        keep: list[int] = []
        best_before = math.inf          # best second value among strictly smaller first values
        i = 0
        while i < n:
            j = i
            x = pts[order[i], 0]
            while j < n and pts[order[j], 0] == x:
                j += 1
            group = order[i:j]          # same first value, second ascending
            low = pts[group[0], 1]
            if low < best_before:
                keep.extend(int(g) for g in group if pts[g, 1] == low)
                best_before = low
            i = j
        return sorted(keep)
    # General case: in lexicographic order a point can only be dominated by an earlier one, and if by
    # any, then by one already on the front (dominance is transitive); so test each against the front.
    order = np.lexsort(pts.T[::-1])
    front = np.empty((0, m))
    keep: list[int] = []
    for i in order:
        p = pts[i]
        if front.size and np.any(np.all(front <= p, axis=1) & np.any(front < p, axis=1)):
            continue
        front = np.vstack([front, p])
        keep.append(int(i))
    return sorted(keep)


def crowding_distance(values: Any, senses: Sequence[str] | Sequence[Objective]) -> np.ndarray:
    """NSGA-II's crowding distance of each row within one front (boundary points: infinity)."""
    pts = _as_min(values, senses)
    n, m = pts.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, math.inf)
    for k in range(m):
        order = np.argsort(pts[:, k], kind="stable")
        col = pts[order, k]
        span = col[-1] - col[0]
        dist[order[0]] = dist[order[-1]] = math.inf
        if span > 0:
            dist[order[1:-1]] += (col[2:] - col[:-2]) / span
    return dist


def _reference(reference: Sequence[float], senses: Sequence[str] | Sequence[Objective]) -> np.ndarray:
    ref = np.asarray(reference, dtype=float).reshape(-1)
    if not np.all(np.isfinite(ref)):
        raise NacosError(f"hypervolume reference point must be finite, got {list(reference)}")
    return ref * _senses(senses, ref.size)


def hypervolume_2d(values: Any, senses: Sequence[str] | Sequence[Objective], reference: Sequence[float]) -> float:
    """Exact 2-D hypervolume by a sweep over the front sorted by the first objective."""
    if len(senses) != 2:
        raise NacosError(f"hypervolume_2d needs 2 objectives, got {len(senses)}")
    return hypervolume(values, senses, reference)


def _hv_min(pts: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of minimisation points all strictly below `ref`, by slicing along the last axis."""
    n, m = pts.shape
    if n == 0:
        return 0.0
    if m == 1:
        return float(ref[0] - pts[:, 0].min())
    if m == 2:
        order = np.lexsort((pts[:, 1], pts[:, 0]))
        area, best_y = 0.0, ref[1]
        for i in order:
            x, y = pts[i]
            if y < best_y:
                area += (ref[0] - x) * (best_y - y)
                best_y = y
        return float(area)
    # Step 1. Keep the non-dominated points only (the rest add no volume).
    pts = pts[pareto_front(pts, ["min"] * m)]
    # Step 2. Sweep the last objective upwards: between two consecutive values, the slab's cross-section
    # is the (m-1)-D hypervolume of every point at or below the slab's lower face.
    order = np.argsort(pts[:, -1], kind="stable")
    pts = pts[order]
    volume = 0.0
    for i in range(len(pts)):
        upper = pts[i + 1, -1] if i + 1 < len(pts) else ref[-1]
        height = upper - pts[i, -1]
        if height > 0:
            volume += height * _hv_min(pts[: i + 1, :-1], ref[:-1])
    return float(volume)


def hypervolume(values: Any, senses: Sequence[str] | Sequence[Objective], reference: Sequence[float]) -> float:
    """The volume dominated by `values` and bounded by `reference` (exact, any number of objectives).

    `reference` is in the objectives' own units, e.g. ``(0.0, 50.0)`` for (accuracy max, latency_ms min)
    bounds accuracy from below at 0 and latency from above at 50 ms. Cost grows as n^(m-1): fine for
    fronts of hundreds of points in 2-4 objectives.
    """
    if len(list(reference)) != len(senses):
        raise NacosError(f"reference point has {len(list(reference))} value(s) for {len(senses)} objective(s)")
    pts = _as_min(values, senses)
    ref = _reference(reference, senses)
    inside = pts[np.all(pts < ref, axis=1)] if len(pts) else pts
    return _hv_min(inside, ref)


def best_under_budgets(objective: Sequence[float], constraint: Sequence[float], budgets: Iterable[float],
                       sense: str = "max") -> dict[float, int | None]:
    """For each budget b: the index of the best `objective` among rows whose `constraint` is <= b
    (None when no row meets it). Ties go to the lower constraint, then the earlier row."""
    if sense not in SENSES:
        raise NacosError(f"sense must be 'max' or 'min', got {sense!r}")
    obj = np.asarray(objective, dtype=float)
    con = np.asarray(constraint, dtype=float)
    if obj.shape != con.shape:
        raise NacosError(f"objective and constraint lengths differ: {obj.shape} vs {con.shape}")
    key = -obj if sense == "max" else obj
    out: dict[float, int | None] = {}
    for b in budgets:
        ok = np.flatnonzero((con <= b) & ~np.isnan(obj))
        if ok.size == 0:
            out[b] = None
            continue
        best = min(ok, key=lambda i: (key[i], con[i], i))
        out[b] = int(best)
    return out
