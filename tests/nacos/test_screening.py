"""Two-stage screening (`nacos.search.screening`): a real XGBoost `ArchLatencyModel` trained on measured
candidates decides which new candidates are worth tuning; the history is rebuilt from the store."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from archspace.export import export_onnx
from archspace.space import ArchSpace
from archspace.stats import onnx_layer_stats
from nacos.results.store import ResultsStore
from nacos.search.screening import LatencyScreen, arch_workloads

OBJ = [("accuracy", "max"), ("latency_ms", "min")]


def _true_ms(arch, space) -> float:
    """A deterministic stand-in for tuned latency: linear in MACs plus a per-layer overhead."""
    layers = arch_workloads(arch, space)
    return 0.05 + 2e-7 * sum(w.macs for w in layers) + 0.004 * len(layers)


def _archs(n: int, seed: int = 0):
    space = ArchSpace()
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        a = space.sample(rng)
        if a.id not in seen:
            seen.add(a.id)
            out.append(a)
    return space, out


def test_workloads_from_the_genotype_match_the_exported_graph(tmp_path: Path) -> None:
    space, (arch,) = _archs(1, seed=3)
    path = export_onnx(arch, tmp_path / "m.onnx")
    graph = [s for s in onnx_layer_stats(path) if s.op_type in ("Conv", "Gemm", "MatMul")]
    mine = arch_workloads(arch, space)
    assert len(mine) == len(graph)
    assert [w.macs for w in mine] == [s.macs for s in graph]
    assert [tuple(w.output_shape) for w in mine if w.op_kind != "dense"] == \
        [tuple(s.output_shape) for s in graph if s.op_type == "Conv"]


def test_nothing_is_screened_while_warming_up() -> None:
    space, archs = _archs(4)
    screen = LatencyScreen(space, OBJ, latency_budget_ms=1e-9, min_samples=3)
    for a in archs[:2]:
        screen.observe(a, {"accuracy": 0.9, "latency_ms": _true_ms(a, space)})
    d = screen.check(archs[3], {"accuracy": 0.1})
    assert d.passed and "warming up (2/3" in d.reason and not d.predicted


def test_over_budget_candidates_are_screened_and_fast_ones_pass(tmp_path: Path) -> None:
    space, archs = _archs(60, seed=1)
    train, test = archs[:30], archs[30:]
    truth = {a.id: _true_ms(a, space) for a in archs}
    budget = float(np.median([truth[a.id] for a in archs]))
    screen = LatencyScreen(space, OBJ, latency_budget_ms=budget, min_samples=5, margin=0.1,
                           model_dir=tmp_path / "model")
    for a in train:
        screen.observe(a, {"accuracy": 0.5, "latency_ms": truth[a.id]})
    slow = [a for a in test if truth[a.id] > 1.5 * budget]
    fast = [a for a in test if truth[a.id] < 0.75 * budget]
    assert slow and fast
    # accuracy 1.0: no measured candidate dominates, so only the budget can screen
    decisions = {a.id: screen.check(a, {"accuracy": 1.0}) for a in slow + fast}
    assert all(decisions[a.id].passed for a in fast), [decisions[a.id].reason for a in fast]
    screened = [a for a in slow if not decisions[a.id].passed]
    assert len(screened) >= len(slow) // 2, [decisions[a.id].predicted for a in slow]
    for a in screened:
        d = decisions[a.id]
        assert "over the budget" in d.reason
        assert d.predicted["latency_predicted_low_ms"] <= d.predicted["latency_predicted_ms"] \
            <= d.predicted["latency_predicted_high_ms"]
    # the model the screen used is on disk as XGBoost JSON with its metadata, loadable again
    from costmodels.arch_latency import ArchLatencyModel

    assert ArchLatencyModel.load(tmp_path / "model").n_train == len(train)


def test_a_dominated_candidate_is_screened_and_a_better_one_passes() -> None:
    space, archs = _archs(12, seed=2)
    screen = LatencyScreen(space, OBJ, latency_budget_ms=None, min_samples=5)
    for a in archs[:10]:
        screen.observe(a, {"accuracy": 0.8, "latency_ms": _true_ms(a, space)})
    # the fastest measured candidate has accuracy 0.8: a slower candidate with less accuracy is hopeless
    new = max(archs[10:], key=lambda a: _true_ms(a, space))
    fastest = min(archs[:10], key=lambda a: _true_ms(a, space))
    assert _true_ms(new, space) > 1.5 * _true_ms(fastest, space)
    d = screen.check(new, {"accuracy": 0.5})
    assert not d.passed and "dominated by measured candidate" in d.reason
    assert screen.check(new, {"accuracy": 0.95}).passed


def test_history_rebuilt_from_the_store_gives_the_same_decisions(tmp_path: Path) -> None:
    space, archs = _archs(20, seed=4)
    budget = float(np.median([_true_ms(a, space) for a in archs]))
    live = LatencyScreen(space, OBJ, latency_budget_ms=budget, min_samples=5)
    with ResultsStore(tmp_path / "r.sqlite") as store:
        for i, a in enumerate(archs[:12]):
            seq = store.add(a.id, a.to_json())
            ok = i % 4 != 3
            metrics = {"accuracy": 0.6 + i / 100, "latency_ms": _true_ms(a, space)} if ok else {}
            record = store.finish(seq, "ok" if ok else "failed", metrics, "" if ok else "build failed")
            live.observe_record(record, space.parse, lambda g: g)
    rebuilt = LatencyScreen(space, OBJ, latency_budget_ms=budget, min_samples=5)
    with ResultsStore(tmp_path / "r.sqlite", create=False, readonly=True) as store:
        for record in store.completed():
            rebuilt.observe_record(record, space.parse, lambda g: g)
    assert rebuilt.n_measured == live.n_measured == 9
    for a in archs[12:]:
        x, y = live.check(a, {"accuracy": 0.7}), rebuilt.check(a, {"accuracy": 0.7})
        assert (x.passed, x.reason) == (y.passed, y.reason)
        assert json.dumps(x.predicted) == json.dumps(y.predicted)


def test_workloads_follow_the_data_channels_and_classes():
    """A user's 3-channel, 4-class data changes the stem's and the classifier's shapes: the screen's
    features (and the one-stage slot keys) are computed for them, not for MNIST's 1 channel and 10 classes."""
    from nacos.backends.tvm import slot_keys

    space = ArchSpace()
    arch = space.sample(random.Random(0))
    mnist, mine = arch_workloads(arch, space), arch_workloads(arch, space, 1, 3, 4)
    assert mnist[0].input_shapes[0][1] == 1 and mine[0].input_shapes[0][1] == 3
    assert mnist[-1].output_shape[1] == 10 and mine[-1].output_shape[1] == 4
    assert mine[0].macs == 3 * mnist[0].macs and mine[1:-1] == mnist[1:-1]
    keys = slot_keys(arch, space, 3, 4)
    assert keys["stem"][4] == 3 and keys["classifier"][1] == 4
    assert slot_keys(arch, space)["stem"][4] == 1
