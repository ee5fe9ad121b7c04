"""The three search modes end to end on real TVM builds, on a tiny space with its own tiny supernet
(trained here for one epoch on scikit-learn's digits) so that each mode runs in about a minute."""

import json

import pytest
import torch

from archspace import ArchSpace, SpaceConfig
from archspace.data import load_dataset
from archspace.supernet import Supernet
from archspace.training import TrainConfig, finalize_checkpoint, train_supernet
from nacos.config import config_from_dict
from nacos.search.run import run_search

SPACE = {"resolutions": [16], "width_mults": [1.0], "kernel_sizes": [3, 5], "expand_ratios": [3], "depths": [1, 2],
         "stem_channels": 8, "stage_channels": [8, 16], "stage_strides": [2, 2], "head_channels": 16}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("supernet")
    torch.manual_seed(0)
    space = ArchSpace(SpaceConfig.from_dict(SPACE))
    data = load_dataset("digits")
    train_supernet(Supernet(space, 1, 10), data, TrainConfig(epochs=1, batch_size=64, n_random=0), tmp, progress=False)
    return str(finalize_checkpoint(tmp, tmp / "tiny.pt"))


def _cfg(checkpoint, tmp_path, **kw):
    base = {"trials": 2, "data": "digits", "checkpoint": checkpoint, "space": SPACE,
            "strategy": {"population": 2, "sample_size": 2},
            "tuning": {"repeats": 5, "warmup": 1, "trials_per_workload": 4, "searcher": "explicit",
                       "database": str(tmp_path / "db")}}
    base.update(kw)
    return config_from_dict(base)


def _rows(run_dir):
    return json.loads((run_dir / "report" / "candidates.json").read_text())


def test_baseline_mode_measures_one_default_schedule(checkpoint, tmp_path):
    summary = run_search(_cfg(checkpoint, tmp_path, mode="baseline", baseline_latency="default-schedule"),
                         tmp_path / "run", progress=False)
    assert summary["ok"] == 2, _rows(tmp_path / "run")
    for row in _rows(tmp_path / "run"):
        assert row["latency_backend"] == "tvm-default-schedule" and row["latency_ms"] > 0


def test_one_stage_mode_measures_the_genome_schedules(checkpoint, tmp_path):
    summary = run_search(_cfg(checkpoint, tmp_path, mode="one-stage"), tmp_path / "run", progress=False)
    rows = _rows(tmp_path / "run")
    assert summary["ok"] == 2, rows
    for row in rows:
        genome = json.loads(row["genome"]) if isinstance(row["genome"], str) else row["genome"]
        slots = [slot for slot, _ in genome["schedules"]]
        assert slots[0] == "stem" and slots[-1] == "classifier"
        assert row["latency_backend"] == "tvm-genome-schedules" and row["latency_ms"] > 0


def test_two_stage_mode_tunes_only_unseen_workloads(checkpoint, tmp_path):
    summary = run_search(_cfg(checkpoint, tmp_path, mode="two-stage"), tmp_path / "run", progress=False)
    rows = _rows(tmp_path / "run")
    assert summary["ok"] == 2, rows
    first, second = rows
    assert first["latency_tuned_tasks"] > 0 and first["latency_reused_tasks"] == 0
    # the second architecture shares the stem, head and classifier: those are reused, not tuned again
    assert second["latency_reused_tasks"] > 0
    assert second["latency_tuned_tasks"] < first["latency_tuned_tasks"] + first["latency_reused_tasks"]
    # onnxruntime timed beside each candidate (in a child process): the row and the report say which to deploy
    for row in rows:
        assert row["latency_onnxruntime_ms"] > 0 and row["latency_deploy_with"] in ("tvm", "onnxruntime")
        assert row["latency_deploy_ms"] == min(row["latency_ms"], row["latency_onnxruntime_ms"])
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    assert report["deployment"]["timed_both"] == 2
    # the database was never pretuned for this space: the summary says so and names the command
    assert summary["pretune"]["pretuned"] is False and "nacos pretune" in summary["pretune"]["note"]


@pytest.fixture(scope="module")
def pretuned(tmp_path_factory):
    """The tiny space pretuned (`nacos pretune`, 2 trials a task): every task has a record on this machine."""
    import subprocess
    import sys

    tmp = tmp_path_factory.mktemp("pretuned")
    space_file = tmp / "space.json"
    space_file.write_text(json.dumps(SPACE))
    out = subprocess.run([sys.executable, "-m", "nacos", "pretune", "--space", str(space_file), "--database",
                          str(tmp / "db"), "--tasks-per-round", "64", "--trials-per-round", "2",
                          "--max-trials-per-task", "2", "--json"], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["coverage"]["space_task_coverage"] == 1.0
    return tmp / "db"


def _on_pretuned(checkpoint, tmp_path, pretuned, **kw):
    """A two-stage config whose database starts as a copy of the pretuned one."""
    cfg = _cfg(checkpoint, tmp_path, mode="two-stage", **kw)
    return config_from_dict({**cfg.to_dict(), "tuning": {**cfg.to_dict()["tuning"], "seed_from": str(pretuned)}})


def test_two_stage_search_on_a_pretuned_database_tunes_nothing(checkpoint, tmp_path, pretuned):
    """After `nacos pretune` of the space (tiny budget), a two-stage candidate only compiles and measures."""
    summary = run_search(_on_pretuned(checkpoint, tmp_path, pretuned), tmp_path / "run", progress=False)
    assert summary["pretune"]["pretuned"] is True and "the rest is tuned" not in summary["pretune"]["note"]
    for row in _rows(tmp_path / "run"):
        assert row["status"] == "ok" and row["latency_tuned_tasks"] == 0 and row["latency_hit_rate"] == 1.0
        # every task has a record here: the latency table's reading stands beside the measured latency
        assert row["latency_table_complete"] is True and 0 < row["latency_table_kernel_ms"]
        assert row["latency_predicted_by"] == "table (uncalibrated)"


def test_a_candidate_the_latency_table_finds_dominated_is_recorded_with_its_prediction_unbuilt(
        checkpoint, tmp_path, pretuned):
    """The search's own evaluator and table screen on the pretuned database: three candidates built and
    measured calibrate the table; a candidate dominated by a measured one is then priced, not built."""
    import random

    from nacos.search.run import build_search
    from nacos.search.table_screen import TableScreen

    cfg = _on_pretuned(checkpoint, tmp_path, pretuned)
    _, _, evaluator, genome_space = build_search(cfg, tmp_path / "run")
    screen = evaluator.screen
    assert isinstance(screen, TableScreen) and screen.min_samples == 3
    rng, seen, measured = random.Random(0), set(), []
    while len(measured) < 3:
        genome = genome_space.sample(rng)
        if genome.id in seen:
            continue
        seen.add(genome.id)
        ev = evaluator(genome)
        assert ev.status == "ok" and ev.metrics["latency_build_seconds"] > 0, ev.reason   # built and timed
        screen.observe(genome, ev.metrics)
        measured.append(ev.metrics)
    assert screen.n_calibrated == 3
    a, b, _ = screen.calibration()
    assert b > 0
    # a measured candidate more accurate and faster than anything in the space dominates every other one
    screen.observe(genome, {"accuracy": 1.0, "latency_ms": 1e-6})
    while (genome := genome_space.sample(rng)).id in seen:
        pass
    ev = evaluator(genome)
    m = ev.metrics
    assert ev.status == "ok" and m["screened"] is True and m["latency_source"] == "predicted"
    assert m["latency_ms"] == m["latency_predicted_ms"] == pytest.approx(a + b * m["table_kernel_ms"])
    assert "dominated by measured candidate" in m["screen_reason"] and m["latency_predicted_by"] == "table"
    # nothing was built or timed for it
    assert "latency_build_seconds" not in m and "latency_onnxruntime_ms" not in m


def test_the_deployed_latency_searches_with_the_faster_runtime_and_builds_nothing_onnxruntime_wins(
        checkpoint, tmp_path, pretuned):
    """``tuning.search_latency: deployed``: a built candidate's latency is the better of its tuned build and
    onnxruntime (both timed); once the calibrated table predicts the build slower than onnxruntime, the
    candidate is recorded with onnxruntime's measured latency and nothing is built for it."""
    import random

    from nacos.search.run import build_search

    cfg = _on_pretuned(checkpoint, tmp_path, pretuned)
    cfg = config_from_dict({**cfg.to_dict(), "tuning": {**cfg.to_dict()["tuning"], "search_latency": "deployed"}})
    _, _, evaluator, genome_space = build_search(cfg, tmp_path / "run")
    screen = evaluator.screen
    assert screen.onnxruntime is not None
    rng, seen = random.Random(1), set()
    while screen.n_calibrated < 3:
        genome = genome_space.sample(rng)
        if genome.id in seen:
            continue
        seen.add(genome.id)
        ev = evaluator(genome)
        m = ev.metrics
        assert ev.status == "ok" and m["latency_build_seconds"] > 0, ev.reason
        assert m["latency_ms"] == min(m["latency_median_ms"], m["latency_onnxruntime_ms"]) == m["latency_deploy_ms"]
        screen.observe(genome, m)
    # rows whose build ran 1000 x their table: the calibrated table now predicts every build slower than onnxruntime
    table = m["latency_table_kernel_ms"]
    for _ in range(8):
        screen.observe(genome, {"accuracy": 0.1, "latency_ms": 1.0, "latency_median_ms": 1000 * table,
                                "latency_table_kernel_ms": table, "latency_table_complete": True})
    while (genome := genome_space.sample(rng)).id in seen:
        pass
    ev = evaluator(genome)
    m = ev.metrics
    assert ev.status == "ok" and m["latency_source"] == "onnxruntime" and m["screened"] is False, ev.reason
    assert m["latency_ms"] == m["latency_onnxruntime_ms"] > 0 and m["latency_deploy_with"] == "onnxruntime"
    assert m["latency_predicted_ms"] > m["latency_ms"] and "not built" in m["screen_reason"]
    assert "latency_build_seconds" not in m and "latency_median_ms" not in m      # nothing was built or timed by TVM
