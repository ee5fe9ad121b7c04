import numpy as np
import pytest

from costmodels import CostModelError, group_kfold, group_train_test_split


def test_group_kfold_never_splits_a_group():
    groups = [f"arch{i % 13}" for i in range(100)]
    seen_test = set()
    for train, test in group_kfold(groups, k=4, seed=1):
        tr = {groups[i] for i in train}
        te = {groups[i] for i in test}
        assert not tr & te
        assert len(train) + len(test) == 100
        assert not seen_test & te
        seen_test |= te
    assert seen_test == set(groups)


def test_group_kfold_deterministic_and_errors():
    groups = list("aabbccddee")
    a = [t.tolist() for _, t in group_kfold(groups, 5, seed=3)]
    b = [t.tolist() for _, t in group_kfold(groups, 5, seed=3)]
    assert a == b
    with pytest.raises(CostModelError, match="distinct groups"):
        list(group_kfold(list("aab"), 3))
    with pytest.raises(CostModelError):
        list(group_kfold(groups, 1))


def test_group_train_test_split():
    groups = np.repeat(np.arange(20), 3).astype(str)
    tr, te = group_train_test_split(groups, 0.25, seed=0)
    assert not set(groups[tr]) & set(groups[te])
    assert len(set(groups[te])) == 5
    with pytest.raises(CostModelError):
        group_train_test_split(["a", "a"], 0.5)
