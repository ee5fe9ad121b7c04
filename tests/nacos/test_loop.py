"""The generic search loop: failures recorded and the search goes on, progress, stop conditions, and
the guard against resuming a store with another strategy."""

from __future__ import annotations

from pathlib import Path

import pytest

from archspace.nb201 import NB201Arch, NB201Space
from nacos.errors import NacosError
from nacos.results.store import ResultsStore
from nacos.search.loop import run_search
from nacos.strategies import make_strategy
from tests.nacos.nb201_objectives import closed_form
from tests.nacos.test_strategies import FourBits


def _aging(seed: int = 0):
    return make_strategy("aging", NB201Space(), seed, population=5, sample_size=2)


def test_failures_are_recorded_and_the_search_goes_on(tmp_path: Path, capsys) -> None:
    def evaluate(arch: NB201Arch):
        if arch.ops[0] == "none":
            raise RuntimeError("export failed: graph has no input edge")
        if arch.ops[0] == "skip_connect":
            return {"latency_ms": 1.0}                          # ok, but without its objective
        if arch.ops[0] == "avg_pool_3x3":
            return "not an evaluation"
        return closed_form(arch, latency_budget_ms=8.0)

    seen = []
    with ResultsStore(tmp_path / "r.sqlite") as store:
        summary = run_search(_aging(), evaluate, store, 30, progress=True, on_record=seen.append)
        rows = store.completed()
    assert summary.completed == 30 == len(rows) == len(seen) and summary.stopped_by == "trials"
    assert summary.ok + summary.rejected + summary.failed == 30 and summary.failed > 0 and summary.ok > 0
    by_op = {}
    for r in rows:
        by_op.setdefault(NB201Arch.from_json(r.genome).ops[0], set()).add((r.status, r.reason.split(":")[0]))
    assert by_op["none"] == {("failed", "RuntimeError")}
    assert {s for s, _ in by_op["skip_connect"]} == {"failed"}
    assert any("objective 'accuracy' missing" in r.reason for r in rows)
    assert by_op["avg_pool_3x3"] == {("failed", "evaluate returned str with status None")}
    assert all(r.reason.startswith("latency") for r in rows if r.status == "rejected")
    assert "search" in capsys.readouterr().err                 # the progress bar, on stderr
    assert summary.front and all(store_row.status == "ok" for store_row in rows if store_row.seq in summary.front)


def test_resuming_with_another_strategy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with ResultsStore(path) as store:
        run_search(_aging(0), closed_form, store, 5, progress=False)
    with ResultsStore(path) as store:
        with pytest.raises(NacosError, match=r"different strategy \(seed differ: stored \[0\], now \[1\]\)"):
            run_search(_aging(1), closed_form, store, 10, progress=False)
        with pytest.raises(NacosError, match="settings differ"):
            run_search(make_strategy("aging", NB201Space(), 0, population=6, sample_size=2), closed_form, store, 10,
                       progress=False)
        assert store.n_completed() == 5


def test_bad_arguments_and_exhaustion(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "r.sqlite") as store:
        with pytest.raises(NacosError, match="n_trials"):
            run_search(_aging(), closed_form, store, -1)
        with pytest.raises(NacosError, match="time_limit"):
            run_search(_aging(), closed_form, store, 3, time_limit=0)
        used = _aging()
        used.tell(NB201Space().sample(0), [1.0], True)
        with pytest.raises(NacosError, match="fresh strategy"):
            run_search(used, closed_form, store, 3)
    with ResultsStore(tmp_path / "bits.sqlite") as store:
        s = make_strategy("random", FourBits(), 0)
        summary = run_search(s, lambda g: {"accuracy": float(g.value)}, store, 10, progress=False)
        best = [r.seq for r in store.completed() if r.metrics["accuracy"] == 3.0]
    assert summary.stopped_by == "exhausted" and summary.completed == 4 and summary.front == tuple(best)
