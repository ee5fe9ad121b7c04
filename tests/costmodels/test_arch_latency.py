"""ArchLatencyModel on synthetic architectures with a known latency, and on NAS-Bench-201."""

import json
import random

import numpy as np
import pytest

from costmodels import (
    ArchLatencyModel,
    ArchModelConfig,
    ArchSample,
    CostModelError,
    conv2d_workload,
    dense_workload,
    latency_metrics,
)
from costmodels.datasets import load_nb201, nb201_layers
from costmodels.folds import group_train_test_split


def random_arch(rng: random.Random, i: int) -> ArchSample:
    """A chain of 3 stages of 1-3 convs at 32/16/8 px with random widths and kernels; its known
    latency weighs the MACs of each stage differently (later stages run less efficiently) plus a
    fixed cost per layer, so the order is not the MACs order."""
    layers, c, res = [], 3, 32
    stage_cost = (1.0, 1.6, 2.5)
    ms = 0.0
    for s in range(3):
        width = rng.choice([8, 16, 24, 32]) * (2 ** s)
        for j in range(rng.randint(1, 3)):
            stride = 2 if (j == 0 and s > 0) else 1  # the first conv of a later stage halves the resolution
            k = rng.choice([1, 3, 5])
            w = conv2d_workload(f"s{s}l{j}", (1, c, res * stride, res * stride), width, k, stride, k // 2)
            layers.append(w)
            ms += stage_cost[s] * w.macs * 1e-7 + 0.02
            c = width
        res //= 2
    fc = dense_workload("fc", 1, c, 10)
    layers.append(fc)
    return ArchSample(tuple(layers), ms + 0.01, f"a{i}")


@pytest.fixture(scope="module")
def synthetic():
    rng = random.Random(0)
    return [random_arch(rng, i) for i in range(400)]


@pytest.mark.parametrize("uncertainty", ["quantile", "ensemble"])
def test_predicts_held_out_architectures(synthetic, uncertainty):
    tr, te = group_train_test_split([s.arch_id for s in synthetic], 0.25, seed=0)
    model = ArchLatencyModel(ArchModelConfig(uncertainty=uncertainty, n_rounds=200, n_ensemble=3))
    model.fit([synthetic[i] for i in tr])
    test = [synthetic[i] for i in te]
    pred = model.predict_interval(test)
    y = np.array([s.latency_ms for s in test])
    m = latency_metrics(y, pred.median_ms)
    assert m["kendall_tau"] > 0.85, m
    assert np.all(pred.low_ms <= pred.median_ms) and np.all(pred.median_ms <= pred.high_ms)
    assert np.all(pred.rel_width >= 0)
    # plain layer lists work as candidates too
    assert np.allclose(model.predict([list(s.layers) for s in test[:3]]), pred.median_ms[:3])


def test_select_value_uncertainty_diversity(synthetic):
    model = ArchLatencyModel(ArchModelConfig(n_rounds=100)).fit(synthetic[:200])
    cands = synthetic[200:260]
    greedy = model.select(cands, 5, kappa=0.0, diversity=0.0)
    pred = model.predict(cands)
    assert greedy == [int(i) for i in np.argsort(pred, kind="mergesort")[:5]]
    picks = model.select(cands, 10)
    assert len(picks) == len(set(picks)) == 10
    # identical candidates: diversity keeps the second copy out of a pick of two
    dup = [cands[0]] * 5 + [cands[1]]
    assert sorted(model.select(dup, 2, kappa=0.0, diversity=5.0)) == [0, 5]
    assert model.select(cands, 100) and len(model.select(cands, 100)) == 60
    with pytest.raises(CostModelError):
        model.select(cands, 0)


def test_incremental_update_and_persistence(synthetic, tmp_path):
    model = ArchLatencyModel(ArchModelConfig(n_rounds=80, update_rounds=40)).fit(synthetic[:50])
    model.update(synthetic[50:150])
    assert model.n_train == 150
    path = model.save(tmp_path / "arch")
    meta = json.loads((path / "meta.json").read_text())
    assert meta["kind"] == "ArchLatencyModel" and meta["n_train"] == 150 and meta["config"]["uncertainty"] == "quantile"
    loaded = ArchLatencyModel.load(path)
    assert np.array_equal(loaded.predict(synthetic[300:310]), model.predict(synthetic[300:310]))
    ens = ArchLatencyModel(ArchModelConfig(uncertainty="ensemble", n_ensemble=2, n_rounds=30)).fit(synthetic[:50])
    p2 = ens.save(tmp_path / "ens")
    assert sorted(x.name for x in p2.iterdir()) == ["booster_0.json", "booster_1.json", "meta.json", "train.npz"]
    assert np.allclose(ArchLatencyModel.load(p2).predict(synthetic[:5]), ens.predict(synthetic[:5]))
    from costmodels import ScheduleRanker

    with pytest.raises(CostModelError, match="not a ScheduleRanker"):
        ScheduleRanker.load(path)


def test_samples_from_measurement_records(synthetic):
    from schedules.records import Measurement

    ok = Measurement(1.5, 1.6, 0.1, 1.8, 1.4, 50, 10, 5)
    s = ArchSample.from_measurement(synthetic[0].layers, ok, "a")
    assert s.latency_ms == 1.5 and s.arch_id == "a"
    with pytest.raises(CostModelError, match="build timed out"):
        ArchSample.from_measurement(synthetic[0].layers, Measurement.failed("build timed out"), "b")


def test_bad_input(synthetic):
    with pytest.raises(CostModelError, match="no training samples"):
        ArchLatencyModel().fit([])
    with pytest.raises(CostModelError, match="not a positive finite"):
        ArchLatencyModel().fit([ArchSample(synthetic[0].layers, float("nan"), "x")])
    with pytest.raises(CostModelError, match="not a positive finite"):
        ArchLatencyModel().fit([ArchSample(synthetic[0].layers, None, "x")])
    with pytest.raises(CostModelError, match="not trained"):
        ArchLatencyModel().predict(synthetic[:1])
    with pytest.raises(CostModelError, match="quantiles"):
        ArchModelConfig(quantiles=(0.5, 0.1, 0.9))


def test_nb201_latency_on_held_out_architectures(nb201_path):
    """Real latencies (Xeon Gold 6226, measured by HELP): 300 architectures to train, 300 others to
    test; the model must beat counting FLOPs."""
    rows = load_nb201(nb201_path)
    rng = np.random.default_rng(1)
    idx = rng.permutation(len(rows))[:600]
    samples = [ArchSample(tuple(nb201_layers(rows[i]["arch"])), rows[i]["lat_ms_gold_6226"], rows[i]["arch"])
               for i in idx]
    model = ArchLatencyModel(ArchModelConfig(n_rounds=200)).fit(samples[:300])
    test = samples[300:]
    y = np.array([s.latency_ms for s in test])
    m = latency_metrics(y, model.predict(test))
    flops = latency_metrics(y, [sum(w.macs * w.count for w in s.layers) for s in test])
    assert m["kendall_tau"] > 0.75 and m["kendall_tau"] > flops["kendall_tau"], (m, flops)
    assert m["within_10pct"] > 0.7, m
