"""Cross-validation folds split by group (architecture or workload), never by row.

A record of workload W in architecture A must never help predict another record of W (or of A) in
the same test fold; splitting by row would leak it and flatter the model.
"""

from __future__ import annotations

from typing import Hashable, Iterator, Sequence

import numpy as np

from costmodels.errors import CostModelError

__all__ = ["group_kfold", "group_train_test_split"]


def group_kfold(groups: Sequence[Hashable], k: int = 5, *, seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (train_idx, test_idx) for k folds; each distinct group lands in exactly one test fold.

    Groups are shuffled with `seed` and dealt round-robin, so folds hold near-equal numbers of groups.
    """
    groups = list(groups)
    distinct = sorted(set(groups), key=repr)
    if k < 2:
        raise CostModelError(f"k must be >= 2, got {k}")
    if len(distinct) < k:
        raise CostModelError(f"{len(distinct)} distinct groups cannot fill {k} folds; lower k or add data")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(distinct))
    fold_of = {distinct[g]: i % k for i, g in enumerate(order)}
    fold = np.array([fold_of[g] for g in groups])
    idx = np.arange(len(groups))
    for f in range(k):
        yield idx[fold != f], idx[fold == f]


def group_train_test_split(groups: Sequence[Hashable], test_fraction: float = 0.2, *,
                           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One split holding out about `test_fraction` of the groups (at least one) for testing."""
    if not 0.0 < test_fraction < 1.0:
        raise CostModelError(f"test_fraction must be in (0, 1), got {test_fraction}")
    groups = list(groups)
    distinct = sorted(set(groups), key=repr)
    if len(distinct) < 2:
        raise CostModelError("need at least 2 distinct groups to hold one out")
    rng = np.random.default_rng(seed)
    n_test = min(len(distinct) - 1, max(1, round(test_fraction * len(distinct))))
    test_groups = {distinct[i] for i in rng.permutation(len(distinct))[:n_test]}
    is_test = np.array([g in test_groups for g in groups])
    idx = np.arange(len(groups))
    return idx[~is_test], idx[is_test]
