"""The two-stage screen by the latency table (`nacos.search.table_screen`): the table read off a real
tuning database (MetaSchedule, a tiny budget, a 2-task model), calibrated on measured candidates, decides
which candidates are built; a candidate with an untuned task goes to the genotype model."""

from __future__ import annotations

import math
import random

import pytest

from archspace.space import ArchSpace
from nacos.search.screening import LatencyScreen
from nacos.search.table_screen import TableScreen, fit_table
from schedules.database import TuningDatabase
from schedules.frontend import import_onnx
from schedules.latency_table import table_latency
from tests.schedules.conftest import NetB, NetSmall, export

OBJ = [("accuracy", "max"), ("latency_ms", "min")]


def test_the_calibration_fit():
    # exact linear data: its intercept and slope; 3 pairs: the median ratio; a negative intercept: through 0
    assert fit_table([(1.0, 1.2), (2.0, 1.7), (3.0, 2.2), (4.0, 2.7)]) == pytest.approx((0.7, 0.5))
    assert fit_table([(1.0, 2.0), (2.0, 3.0), (4.0, 7.0)]) == (0.0, 1.75)
    a, b = fit_table([(1.0, 0.5), (2.0, 2.0), (3.0, 3.5), (4.0, 5.0)])    # fit: -1 + 1.5 x
    assert a == 0.0 and b == pytest.approx((0.5 + 4 + 10.5 + 20) / 30)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    from schedules.targets import host_target
    from schedules.tuner import tune

    d = tmp_path_factory.mktemp("table-screen")
    small, other = export(NetSmall(), (1, 3, 16, 16), d / "small.onnx"), export(NetB(), (1, 3, 16, 16), d / "b.onnx")
    target = host_target()
    db = TuningDatabase(d / "db")
    tune(import_onnx(small), db, target, trials_per_task=8, seed=0)   # every task of `small`, none of b's conv2
    db.refresh()
    return {"db": db, "target": target, "small": small, "other": other}


def _screen(tuned, budget=None):
    space = ArchSpace()
    fallback = LatencyScreen(space, OBJ, latency_budget_ms=budget, min_samples=5)
    return space, TableScreen(fallback, tuned["db"], tuned["target"], min_samples=3, margin=0.1, level=0.9)


def _archs(space, n, seed=0):
    rng, out = random.Random(seed), {}
    while len(out) < n:
        a = space.sample(rng)
        out[a.id] = a
    return list(out.values())


def test_the_calibrated_table_screens_and_says_so(tuned):
    space, screen = _screen(tuned)
    table = table_latency(import_onnx(tuned["small"]), tuned["db"], tuned["target"])
    assert table.complete and table.kernel_ms > 0
    a0, a1, a2, a3, new = _archs(space, 5)
    # before it is calibrated, everything with a complete table passes, with the reading recorded
    d = screen.check(new, {"accuracy": 0.5}, onnx_path=tuned["small"])
    assert d.passed and "calibrating the latency table (0/3" in d.reason
    assert d.predicted["table_kernel_ms"] == table.kernel_ms and d.predicted["table_missing_tasks"] == 0
    # measured candidates, each a model with its own table: measured / table 1.6, 1.5, 1.4
    tables = [0.5 * table.kernel_ms, table.kernel_ms, 2 * table.kernel_ms]
    for arch, t, ratio, acc in zip((a0, a1, a2), tables, (1.6, 1.5, 1.4), (0.9, 0.8, 0.95)):
        screen.observe(arch, {"accuracy": acc, "latency_ms": ratio * t,
                              "latency_table_kernel_ms": t, "latency_table_complete": True})
    # a row measured without a complete table teaches the genotype model, not the calibration
    screen.observe(a3, {"accuracy": 0.7, "latency_ms": 1.0, "latency_table_kernel_ms": 0.1,
                        "latency_table_complete": False})
    assert screen.n_calibrated == 3 and screen.n_measured == 4
    a, b, half = screen.calibration()
    # 3 pairs: the median ratio; the interval from the leave-one-out errors (the worst: a2, predicted 1.55)
    assert (a, b) == (0.0, pytest.approx(1.5)) and half == pytest.approx(math.log(1.55 / 1.4))
    mid = b * table.kernel_ms
    optimistic = mid * math.exp(-half) / 1.1
    # a0 (accuracy 0.9, 0.8 x this table) is faster than even the optimistic end: a less accurate one is dominated
    low = screen.check(new, {"accuracy": 0.7}, onnx_path=tuned["small"])
    assert not low.passed and f"dominated by measured candidate {a0.id}" in low.reason and "latency table" in low.reason
    assert low.predicted["latency_predicted_by"] == "table" and low.cause == "dominated"
    assert low.priced_ms == pytest.approx(mid)          # recorded with its prediction, not built
    assert low.predicted["latency_predicted_ms"] == pytest.approx(mid)
    assert low.predicted["latency_predicted_low_ms"] == pytest.approx(mid * math.exp(-half))
    # more accurate than every measured candidate: it may enter the front
    high = screen.check(new, {"accuracy": 0.99}, onnx_path=tuned["small"])
    assert high.passed and high.reason == "may enter the front"
    # a hard budget below the optimistic end screens it whatever its accuracy (set through the wrapper)
    screen.latency_budget_ms = 0.99 * optimistic
    assert screen.fallback.latency_budget_ms == screen.latency_budget_ms
    over = screen.check(new, {"accuracy": 0.99}, onnx_path=tuned["small"])
    assert not over.passed and "over the budget" in over.reason and over.priced_ms is None   # rejected
    # a row the screen priced teaches neither the calibration nor the dominance points
    screen.observe(new, {"accuracy": 0.99, "latency_ms": 1e-6, "latency_source": "predicted",
                         "latency_table_kernel_ms": table.kernel_ms, "latency_table_complete": True})
    assert screen.n_calibrated == 3 and screen.n_measured == 4 and len(screen.fallback.points) == 4
    # price=False: a dominated candidate is rejected, as the cost model's screen does
    screen.price, screen.latency_budget_ms = False, None
    assert screen.check(new, {"accuracy": 0.7}, onnx_path=tuned["small"]).priced_ms is None


def test_a_task_without_a_record_leaves_the_candidate_to_the_genotype_model(tuned):
    space, screen = _screen(tuned)
    arch = _archs(space, 1, seed=3)[0]
    d = screen.check(arch, {"accuracy": 0.5}, onnx_path=tuned["other"])
    assert d.passed and d.reason.startswith("latency table incomplete (")
    assert "warming up (0/5" in d.reason and d.predicted["latency_predicted_by"] == "model"
    assert d.predicted["table_missing_tasks"] >= 1
    d = screen.check(arch, {"accuracy": 0.5})                      # no exported model: the model decides
    assert d.passed and d.predicted == {"latency_predicted_by": "model"}


@pytest.mark.parametrize("level", [0.0, 0.9])
def test_the_interval_level_decides_how_close_to_the_front_a_candidate_is_built(tuned, level):
    """Level 0 compares the point prediction; 0.9 the optimistic end of the 90 % interval, so a candidate
    predicted exactly at a measured one's latency, and less accurate, is priced at 0 and built at 0.9."""
    space, screen = _screen(tuned)
    screen.level, screen.margin = level, 0.0
    t = table_latency(import_onnx(tuned["small"]), tuned["db"], tuned["target"]).kernel_ms
    a1, b0, b1, new = _archs(space, 4, seed=5)
    for arch, table, ratio, acc in ((a1, t, 1.5, 0.8), (b0, 2 * t, 1.6, 0.5), (b1, 3 * t, 1.4, 0.5)):
        screen.observe(arch, {"accuracy": acc, "latency_ms": ratio * table, "latency_table_kernel_ms": table,
                              "latency_table_complete": True})
    d = screen.check(new, {"accuracy": 0.79}, onnx_path=tuned["small"])
    assert d.predicted["latency_predicted_ms"] == pytest.approx(1.5 * t)      # the median ratio x its table
    if level == 0.0:
        assert d.predicted["latency_predicted_low_ms"] == d.predicted["latency_predicted_ms"]
        assert not d.passed and f"dominated by measured candidate {a1.id}" in d.reason and d.priced_ms is not None
    else:
        assert d.predicted["latency_predicted_low_ms"] == pytest.approx(1.5 * t * 1.4 / 1.55)
        assert d.passed and d.reason == "may enter the front"


def test_under_the_deployed_latency_onnxruntime_prices_what_it_runs_faster_than_the_tuned_build(tuned):
    """``tuning.search_latency: deployed``: the screen times the candidate with onnxruntime (really, in a
    process of its own), and where onnxruntime beats even the table's optimistic end the candidate is
    recorded with onnxruntime's measured latency, not built and not marked screened; where the tuned build
    may win, the table decides as before, a dominated one priced at the better of the two."""
    from schedules.isolated import TimingWorker
    from schedules.measure import Protocol

    worker = TimingWorker()
    try:
        m = worker.onnxruntime(tuned["small"], Protocol(warmup=2, repeats=10), 1)
    finally:
        worker.close()
    assert m.ok and m.median_ms > 0
    timings = []

    def onnxruntime(path):
        timings.append(path)
        return {"onnxruntime_ms": m.median_ms, "onnxruntime_std_ms": m.std_ms}

    t = table_latency(import_onnx(tuned["small"]), tuned["db"], tuned["target"]).kernel_ms
    for ratio, expect in ((2.0, "onnxruntime-faster"), (0.5, "table")):
        space, screen = _screen(tuned)
        screen.onnxruntime, screen.level, screen.margin = onnxruntime, 0.0, 0.0
        a0, a1, a2, new = _archs(space, 4, seed=7)
        # calibrated so that the table predicts `ratio` x onnxruntime's time for the `small` model
        for arch, acc in ((a0, 0.9), (a1, 0.5), (a2, 0.4)):
            screen.observe(arch, {"accuracy": acc, "latency_ms": 0.1 * m.median_ms,  # deployed (onnxruntime's)
                                  "latency_median_ms": ratio * m.median_ms, "latency_table_kernel_ms": t,
                                  "latency_table_complete": True})
        assert screen.calibration()[1] == pytest.approx(ratio * m.median_ms / t)   # from the build's own time
        d = screen.check(new, {"accuracy": 0.5}, onnx_path=tuned["small"])
        assert d.predicted["latency_onnxruntime_ms"] == m.median_ms and timings[-1] == tuned["small"]
        if expect == "onnxruntime-faster":
            assert not d.passed and d.cause == "onnxruntime-faster" and d.priced_source == "onnxruntime"
            assert d.priced_ms == m.median_ms and "deployed with onnxruntime, not built" in d.reason
        else:
            # the build may win (predicted 0.5 x onnxruntime) but a0 (0.1 x, more accurate) dominates it
            assert not d.passed and d.cause == "dominated" and d.priced_source == "predicted"
            assert d.priced_ms == pytest.approx(0.5 * m.median_ms)
            more = screen.check(new, {"accuracy": 0.95}, onnx_path=tuned["small"])
            assert more.passed and more.reason == "may enter the front"
    # a tuned-TVM screen (no onnxruntime) times nothing
    _, plain = _screen(tuned)
    n = len(timings)
    plain.check(new, {"accuracy": 0.5}, onnx_path=tuned["small"])
    assert len(timings) == n
