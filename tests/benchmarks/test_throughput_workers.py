"""`benchmarks/throughput_workers.py --quick`: real searches (baseline mode, real TVM builds and
measurements) on the local executor and on `dask://local:1` and `dask://local:2`, on a tiny space with
its own one-epoch supernet, output in tmp_path. Checks the JSON's structure and that the counts are
exact; no timing thresholds (shared machine)."""

import json

import torch

from archspace import ArchSpace, SpaceConfig
from archspace.data import load_dataset
from archspace.supernet import Supernet
from archspace.training import TrainConfig, finalize_checkpoint, train_supernet

SPACE = {"resolutions": [16], "width_mults": [1.0], "kernel_sizes": [3, 5], "expand_ratios": [3], "depths": [1, 2],
         "stem_channels": 8, "stage_channels": [8, 16], "stage_strides": [2, 2], "head_channels": 16}


def test_throughput_workers_quick_writes_exact_counts_and_resumes(tmp_path, run_benchmark):
    torch.manual_seed(0)
    train_supernet(Supernet(ArchSpace(SpaceConfig.from_dict(SPACE)), 1, 10), load_dataset("digits"),
                   TrainConfig(epochs=1, batch_size=64, n_random=0), tmp_path / "ckpt", progress=False)
    checkpoint = str(finalize_checkpoint(tmp_path / "ckpt", tmp_path / "tiny.pt"))
    (tmp_path / "space.json").write_text(json.dumps(SPACE))
    out = tmp_path / "throughput_workers.json"
    argv = ["--quick", "--quiet", "--checkpoint", checkpoint, "--data", "digits",
            "--space", str(tmp_path / "space.json"), "--work-dir", str(tmp_path / "work"), "--out", str(out)]
    run_benchmark("throughput_workers", argv)
    data = json.loads(out.read_text())
    s = data["settings"]
    assert s["modes"] == ["baseline"] and s["workers"] == [1, 2] and s["candidates"] == 4 and s["strategy"] == "random"
    assert data["complete"] is True and data["command"].startswith("python") and data["machine"]["cores"] >= 1
    assert "apache-tvm" in data["versions"]
    assert set(data["runs"]) == {"baseline/local", "baseline/dask-1", "baseline/dask-2"}
    for key, run in data["runs"].items():
        label = key.split("/")[1]
        assert run["executor"] == {"local": "local", "dask-1": "dask://local:1", "dask-2": "dask://local:2"}[label]
        assert run["parallel"] == run["workers"] == (2 if label == "dask-2" else 1)
        assert run["candidates"] == 4 and len(run["genome_ids"]) == 4
        assert run["ok"] + run["failed"] + run["rejected"] == 4
        assert run["ok"] == 4, run["reasons"]
        assert run["wall_s"] > 0 and run["span_s"] > 0 and run["eval_s_sum"] > 0 and run["latency_ms_median"] > 0
        assert run["candidates_per_min"] == 60.0 * 4 / run["wall_s"]
    summary = data["summary"]["baseline"]
    assert summary["same_candidates"] is True   # random search proposes the same whatever the window
    lines = {run["label"]: run for run in summary["runs"]}
    assert list(lines) == ["local", "dask-1", "dask-2"]
    assert lines["dask-1"]["speedup_vs_dask1"] == 1.0 and lines["local"]["speedup_vs_local"] == 1.0
    assert all(run["speedup_vs_dask1"] > 0 and run["speedup_vs_local"] > 0 for run in lines.values())
    png = out.with_suffix(".png")
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    table = out.with_suffix(".md").read_text().splitlines()
    assert table[0].startswith("| mode | executor") and len(table) == 2 + 3
    # a rerun of the same command finds every run done and runs nothing again
    run_benchmark("throughput_workers", argv)
    assert json.loads(out.read_text())["runs"] == data["runs"]
