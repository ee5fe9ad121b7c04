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


def test_two_stage_search_on_a_pretuned_database_tunes_nothing(checkpoint, tmp_path):
    """After `nacos pretune` of the space (tiny budget), a two-stage candidate only compiles and measures."""
    import subprocess
    import sys

    space_file = tmp_path / "space.json"
    space_file.write_text(json.dumps(SPACE))
    out = subprocess.run([sys.executable, "-m", "nacos", "pretune", "--space", str(space_file), "--database",
                          str(tmp_path / "db"), "--tasks-per-round", "64", "--trials-per-round", "2",
                          "--max-trials-per-task", "2", "--json"], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["coverage"]["space_task_coverage"] == 1.0
    summary = run_search(_cfg(checkpoint, tmp_path, mode="two-stage"), tmp_path / "run", progress=False)
    assert summary["pretune"]["pretuned"] is True and "the rest is tuned" not in summary["pretune"]["note"]
    for row in _rows(tmp_path / "run"):
        assert row["status"] == "ok" and row["latency_tuned_tasks"] == 0 and row["latency_hit_rate"] == 1.0
