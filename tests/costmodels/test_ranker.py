"""ScheduleRanker on synthetic schedules with a known order and on real MetaSchedule records."""

import json
import math
import random
import shutil

import numpy as np
import pytest

from costmodels import (
    CostModelError,
    RankerConfig,
    ScheduleRanker,
    ScheduleSample,
    conv2d_workload,
    latency_metrics,
)
from schedules.records import LOOP_ORDERS, PARALLEL_CHOICES, VECTORIZE_CHOICES, ScheduleConfig


def true_ms(w, cfg: ScheduleConfig) -> float:
    """A known latency: the workload's MACs times a penalty that prefers tile_oc 8, tile_ow 4,
    vectorizing and parallelizing, and the loop orders listed first."""
    pen = (1.0 + abs(math.log2(cfg.tile_oc) - 3) + 0.5 * abs(math.log2(cfg.tile_ow) - 2)
           + (cfg.vectorize == "none") * 1.0 + (cfg.parallel == "none") * 1.5 + 0.1 * LOOP_ORDERS.index(cfg.loop_order))
    return w.macs * 1e-7 * pen


def random_configs(n, seed):
    rng = random.Random(seed)
    return [ScheduleConfig(tile_oc=rng.choice([1, 2, 4, 8, 16, 32]), tile_oh=rng.choice([1, 2]),
                           tile_ow=rng.choice([1, 2, 4, 8, 16]), tile_ic=rng.choice([1, 4, 8]),
                           loop_order=rng.choice(LOOP_ORDERS), vectorize=rng.choice(VECTORIZE_CHOICES),
                           parallel=rng.choice(PARALLEL_CHOICES), unroll=rng.choice([0, 16, 64]))
            for _ in range(n)]


WORKLOADS = [conv2d_workload(f"w{i}", (1, c, r, r), k, 3, 1, 1)
             for i, (c, r, k) in enumerate([(16, 32, 32), (32, 16, 32), (32, 16, 64), (64, 8, 64), (8, 32, 16),
                                            (16, 16, 16)])]


def synthetic(workloads, n_per, seed):
    return [ScheduleSample(w, cfg, true_ms(w, cfg))
            for j, w in enumerate(workloads) for cfg in random_configs(n_per, seed + j)]


@pytest.mark.parametrize("objective", ["rank:pairwise", "rank:ndcg", "reg:squarederror"])
def test_learns_a_known_order_on_a_held_out_workload(objective):
    train = synthetic(WORKLOADS[:5], 60, seed=0)
    held = WORKLOADS[5]
    cands = random_configs(80, seed=99)
    ranker = ScheduleRanker(RankerConfig(objective=objective, schedule_kind="config", n_rounds=150)).fit(train)
    y = np.array([true_ms(held, c) for c in cands])
    m = latency_metrics(y, -ranker.scores(held, cands), k=5)
    assert m["pairwise_accuracy"] > 0.9, m
    assert m["top5_recall"] >= 0.6, m
    order = ranker.rank(held, cands)
    assert sorted(order) == list(range(80))
    assert y[order[0]] <= np.quantile(y, 0.1)
    if objective == "reg:squarederror":
        assert np.all(ranker.predict_ms(held, cands) > 0)
    else:
        with pytest.raises(CostModelError, match="reg:squarederror"):
            ranker.predict_ms(held, cands)


def test_incremental_update_adds_records_and_helps():
    few = synthetic(WORKLOADS[:1], 12, seed=0)
    ranker = ScheduleRanker(RankerConfig(schedule_kind="config", n_rounds=60, update_rounds=60)).fit(few)
    held, cands = WORKLOADS[5], random_configs(80, seed=7)
    y = np.array([true_ms(held, c) for c in cands])
    before = latency_metrics(y, -ranker.scores(held, cands))["pairwise_accuracy"]
    ranker.update(synthetic(WORKLOADS[1:5], 60, seed=1))
    assert ranker.n_train == 12 + 4 * 60
    after = latency_metrics(y, -ranker.scores(held, cands))["pairwise_accuracy"]
    assert after > before


def test_save_load_round_trip_and_refusals(tmp_path):
    ranker = ScheduleRanker(RankerConfig(schedule_kind="config", n_rounds=30)).fit(synthetic(WORKLOADS[:3], 20, 0))
    cands = random_configs(20, 5)
    path = ranker.save(tmp_path / "ranker")
    meta = json.loads((path / "meta.json").read_text())
    assert meta["kind"] == "ScheduleRanker" and meta["feature_names"] == list(ranker.feature_names)
    assert len(meta["training_digest"]) == 64 and "xgboost-cpu" in meta["versions"]
    json.loads((path / "booster_0.json").read_text())  # XGBoost's own JSON
    loaded = ScheduleRanker.load(path)
    assert np.array_equal(loaded.scores(WORKLOADS[4], cands), ranker.scores(WORKLOADS[4], cands))
    loaded.update(synthetic(WORKLOADS[3:4], 10, 3))  # training continues after a load
    assert loaded.n_train == 70
    ubj = ScheduleRanker.load(ranker.save(tmp_path / "ubj", fmt="ubj"))
    assert np.allclose(ubj.scores(WORKLOADS[4], cands), ranker.scores(WORKLOADS[4], cands))

    def tampered(name, edit):
        d = tmp_path / name
        shutil.copytree(path, d)
        edit(d)
        return d

    def edit_meta(key, value):
        def f(d):
            m = json.loads((d / "meta.json").read_text())
            m[key] = value
            (d / "meta.json").write_text(json.dumps(m))
        return f

    with pytest.raises(CostModelError, match="features do not match"):
        ScheduleRanker.load(tampered("names", edit_meta("feature_names", meta["feature_names"][:-1] + ["other"])))
    with pytest.raises(CostModelError, match="version"):
        ScheduleRanker.load(tampered("fv", edit_meta("feature_version", 999)))
    with pytest.raises(CostModelError, match="format version"):
        ScheduleRanker.load(tampered("fmt", edit_meta("format_version", 0)))
    with pytest.raises(CostModelError, match="not a ScheduleRanker"):
        ScheduleRanker.load(tampered("kind", edit_meta("kind", "ArchLatencyModel")))
    with pytest.raises(CostModelError, match="digest"):
        ScheduleRanker.load(tampered("digest", edit_meta("training_digest", "0" * 64)))
    with pytest.raises(CostModelError, match="refusing"):
        ScheduleRanker.load(tampered("path", edit_meta("boosters", ["../booster_0.json"])))
    import pickle  # only to build the hostile payload the loader must refuse

    with pytest.raises(CostModelError, match="pickle"):
        ScheduleRanker.load(tampered("pkl", lambda d: (d / "booster_0.json").write_bytes(pickle.dumps({"x": 1}))))
    with pytest.raises(CostModelError, match="no meta.json"):
        ScheduleRanker.load(tmp_path / "nothing")


def test_bad_training_input():
    ranker = ScheduleRanker(RankerConfig(schedule_kind="config"))
    with pytest.raises(CostModelError, match="no training samples"):
        ranker.fit([])
    bad = [ScheduleSample(WORKLOADS[0], ScheduleConfig(), float("nan"))]
    with pytest.raises(CostModelError, match="not a positive finite"):
        ranker.fit(bad)
    with pytest.raises(CostModelError, match="not trained"):
        ranker.scores(WORKLOADS[0], [ScheduleConfig()])
    with pytest.raises(CostModelError, match="MetaSchedule traces"):
        ScheduleRanker(RankerConfig(schedule_kind="trace")).fit([ScheduleSample(WORKLOADS[0], ScheduleConfig(), 1.0)])
    with pytest.raises(CostModelError, match="objective"):
        RankerConfig(objective="binary:logistic")


def test_trace_ranker_on_real_metaschedule_records(ms_by_workload, tmp_path):
    """Trained on one workload's real records, scoring the other's: the pipeline runs on real
    records and its output is a ranking of the held-out schedules (quality is the benchmark's job)."""
    first, second = list(ms_by_workload.values())
    ranker = ScheduleRanker(RankerConfig(schedule_kind="trace", n_rounds=50)).fit(first)
    test = second
    order = ranker.rank(test[0].workload, [s.schedule for s in test])
    assert sorted(order) == list(range(len(test)))
    again = ScheduleRanker.load(ranker.save(tmp_path / "m"))
    assert again.rank(test[0].workload, [s.schedule for s in test]) == order
