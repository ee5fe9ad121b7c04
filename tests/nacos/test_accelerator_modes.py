"""The three search modes on an accelerator target (``target: accel://eyeriss-like``), each a real search
on ZigZag: baseline runs one fixed mapping rule for every layer, two-stage ZigZag's mapping search per
layer, one-stage the genome's per-layer mapping; energy and EDP come from the accelerator model and are
objectives and hard budgets; a bad hardware file is refused before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("zigzag")

from nacos.config import config_from_dict  # noqa: E402
from nacos.errors import ConfigError  # noqa: E402
from nacos.search.modes import run_mode  # noqa: E402
from nacos.search.run import run_search  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BACKEND = {"baseline": "zigzag-fixed", "two-stage": "zigzag", "one-stage": "zigzag-genome"}


def _cfg(tmp_path: Path, mode: str, **extra) -> dict:
    return {"mode": mode, "target": "accel://eyeriss-like", "trials": 2, "seed": 1,
            "objectives": ["accuracy", "edp"], "strategy": {"name": "nsga2", "population": 2, "sample_size": 2},
            "tuning": {"database": str(tmp_path / "db")}, **extra}


def _rows(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "report" / "candidates.json").read_text())


def test_config_takes_accel_targets_and_refuses_what_does_not_apply(tmp_path):
    for mode, backend in BACKEND.items():
        cfg = config_from_dict(_cfg(tmp_path, mode))
        assert run_mode(cfg).backend == backend and not run_mode(cfg).tunes and not run_mode(cfg).screens
    with pytest.raises(ConfigError, match="target: .*unknown accelerator 'nope'.*eyeriss-like"):
        config_from_dict({"target": "accel://nope"})
    with pytest.raises(ConfigError, match="target: .*no hardware file"):
        config_from_dict({"target": f"accel://{tmp_path / 'missing.yaml'}"})
    with pytest.raises(ConfigError, match="baseline_latency: 'onnxruntime' applies to the CPU / GPU targets"):
        config_from_dict({"target": "accel://tpu-like", "mode": "baseline", "baseline_latency": "onnxruntime"})
    with pytest.raises(ConfigError, match="budgets.edp: must be > 0"):
        config_from_dict({"budgets": {"edp": 0}})


@pytest.mark.slow
def test_the_three_modes_search_on_zigzag_with_energy_and_edp(tmp_path):
    runs = {}
    for mode in BACKEND:
        run_dir = tmp_path / mode
        summary = run_search(config_from_dict(_cfg(tmp_path, mode)), run_dir, progress=False)
        assert summary["evaluated"] == 2 and summary["failed"] == 0, summary
        runs[mode] = _rows(run_dir)
    for mode, rows in runs.items():
        for row in rows:
            assert row["latency_backend"] == BACKEND[mode]
            assert row["energy_mj"] == pytest.approx(row["latency_energy_mj"])   # ZigZag's, not the op model's
            assert row["energy_source"].startswith("zigzag ")
            assert row["edp"] == pytest.approx(row["energy_mj"] * row["latency_ms"])
            assert row["latency_ms"] == pytest.approx(row["latency_latency_cycles"] / 200e3)
            assert row["latency_layers_costed"] > 10 and row["latency_layers_not_costed"] >= 0
    # the three runs share one layer cache beside the database; each mode's mappings are keyed apart, so
    # the same architecture (seed 1 proposes the same first candidate to baseline and two-stage) costs
    # differently under the fixed rule and under the searched mapping
    cache = tmp_path / "accelerator-layers.jsonl"
    assert cache.is_file() and len(cache.read_text().splitlines()) > 20
    first = {m: rows[0] for m, rows in runs.items()}
    assert first["baseline"]["arch_id"] == first["two-stage"]["arch_id"]
    assert first["baseline"]["edp"] != pytest.approx(first["two-stage"]["edp"], rel=1e-9)

    # a hard EDP budget below every candidate rejects each with the reason; a rerun of the same run
    # directory replays without mapping anything
    tight = config_from_dict(_cfg(tmp_path, "baseline", budgets={"edp": 1e-6}))
    summary = run_search(tight, tmp_path / "tight", progress=False)
    assert summary["rejected"] == 2
    assert all("edp" in r["reason"] and "over the budget 1e-06" in r["reason"] for r in _rows(tmp_path / "tight"))


def test_a_bad_hardware_file_exits_2_naming_the_key_and_writes_nothing(tmp_path):
    bad = tmp_path / "array.yaml"
    bad.write_text("name: broken\nmemories: {}\n")
    run_dir = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "nacos", "search", "--mode", "baseline", "--target", f"accel://{bad}",
                        "--run-dir", str(run_dir)], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2, r.stderr
    assert "target:" in r.stderr and str(bad) in r.stderr, r.stderr
    assert not run_dir.exists()


def test_export_refuses_an_accelerator_run(tmp_path):
    from nacos.errors import NacosError
    from nacos.tools.export import export_candidate

    run_dir = tmp_path / "run"
    run_search(config_from_dict(_cfg(tmp_path, "baseline", trials=1)), run_dir, progress=False)
    with pytest.raises(NacosError, match="no compiled library to export"):
        export_candidate(run_dir)


def test_the_accelerator_sizing_is_a_third_axis_of_every_mode(tmp_path):
    """accelerator_sizing: the genome holds the PE array and buffer factors beside the mode's genome; the
    same architecture costs differently on differently sized arrays (ZigZag for real), each sizing's layers
    cached apart and hit the second time; a search records the array and its area, an area objective and
    budget apply; the option is refused off an accel:// target, and the area without it."""
    import random

    from archspace import ArchSpace, SpaceConfig
    from archspace.export import export_onnx
    from costmodels.accelerator_sizing import Sizing
    from nacos.backends.accelerator import AcceleratorLatency
    from nacos.search.sized_space import SizedGenome

    space_cfg = {"resolutions": [16], "width_mults": [1.0], "kernel_sizes": [3], "expand_ratios": [3], "depths": [1],
                 "stem_channels": 8, "stage_channels": [8], "stage_strides": [2], "head_channels": 16}
    for mode in BACKEND:
        cfg = config_from_dict(_cfg(tmp_path, mode, accelerator_sizing=True, space=space_cfg))
        gspace = run_mode(cfg).genome_space(ArchSpace(SpaceConfig.from_dict(space_cfg)))
        genome = gspace.sample(random.Random(0))
        assert isinstance(genome, SizedGenome) and len(genome.sizing.pe_scale) == 2
        assert gspace.parse(genome.to_json()) == genome
        assert run_mode(cfg).arch_of(genome) is not None
    space = ArchSpace(SpaceConfig.from_dict(space_cfg))
    arch = space.sample(random.Random(0))
    onnx_path = export_onnx(arch, tmp_path / "m.onnx", space=space, check=False)
    backend = AcceleratorLatency(cache=tmp_path / "layers.jsonl", space=space)
    small, large = (SizedGenome(arch, Sizing((f, f), f)) for f in (0.5, 2.0))
    a, b = backend.latency(small, arch, onnx_path), backend.latency(large, arch, onnx_path)
    assert a.ok and b.ok, (a.reason, b.reason)
    assert a.details["accel_pe_array"] == "7x6" and b.details["accel_pe_array"] == "28x24"
    assert a.details["accel_area"] < a.details["accel_base_area"] < b.details["accel_area"]
    assert a.details["zigzag_calls"] > 0 and b.details["zigzag_calls"] > 0      # each sizing mapped apart
    cost = [(r.details["energy_pj"], r.details["latency_cycles"]) for r in (a, b)]
    assert cost[0] != cost[1]
    again = backend.latency(small, arch, onnx_path)
    assert again.details["zigzag_calls"] == 0 and again.ms == pytest.approx(a.ms)
    # a real (tiny) search of the default space (the packaged supernet's): rows carry the sizing and its
    # area, an objective here
    cfg = config_from_dict(_cfg(tmp_path, "baseline", accelerator_sizing=True, trials=3,
                                objectives=["accuracy", "edp", "accel_area"]))
    summary = run_search(cfg, tmp_path / "sized", progress=False)
    assert summary["evaluated"] == 3 and summary["failed"] == 0, summary
    for row in _rows(tmp_path / "sized"):
        assert row["accel_area"] > 0 and len(row["latency_accel_pe_array"].split("x")) == 2
        assert row["latency_hardware"].startswith("eyeriss-like pe") and "buf" in row["latency_hardware"]
    with pytest.raises(ConfigError, match="accelerator_sizing: .*needs target accel://"):
        config_from_dict({"accelerator_sizing": True})
    with pytest.raises(ConfigError, match="set accelerator_sizing: true"):
        config_from_dict(_cfg(tmp_path, "baseline", objectives=["accuracy", "accel_area"]))
