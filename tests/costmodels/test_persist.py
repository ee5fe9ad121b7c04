"""`verify_model_dir` on real saved models (a ScheduleRanker and an ArchLatencyModel fitted here): a good
directory verifies clean and unchanged; a cut booster, a flipped byte in the training arrays, a wrong
feature version and an unknown kind each give a finding that names the file; repair moves the directory
aside whole."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from costmodels import (
    ArchLatencyModel,
    ArchModelConfig,
    ArchSample,
    RankerConfig,
    ScheduleRanker,
    ScheduleSample,
    conv2d_workload,
    dense_workload,
)
from costmodels.persist import verify_model_dir
from schedules.records import ScheduleConfig


def _snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@pytest.fixture
def ranker_dir(tmp_path: Path) -> Path:
    rng = random.Random(0)
    samples = []
    for i, (c, r) in enumerate([(8, 16), (16, 8)]):
        w = conv2d_workload(f"w{i}", (1, c, r, r), 16, 3, 1, 1)
        for _ in range(12):
            cfg = ScheduleConfig(tile_oc=rng.choice([1, 4, 16]), tile_ow=rng.choice([1, 2, 4]))
            samples.append(ScheduleSample(w, cfg, 1e-3 * cfg.tile_oc + rng.random() * 1e-4))
    return ScheduleRanker(RankerConfig(schedule_kind="config", n_rounds=10)).fit(samples).save(tmp_path / "ranker")


def test_good_models_verify_clean_and_unchanged(ranker_dir: Path, tmp_path: Path) -> None:
    rng = random.Random(1)
    archs = []
    for i in range(30):
        width = rng.choice([8, 16, 32])
        layers = (conv2d_workload("c", (1, 3, 16, 16), width, 3, 1, 1), dense_workload("fc", 1, width, 10))
        archs.append(ArchSample(layers, 0.1 + width * 0.01 + rng.random() * 1e-3, f"a{i}"))
    arch_dir = ArchLatencyModel(ArchModelConfig(n_rounds=10)).fit(archs).save(tmp_path / "arch")
    for d, kind in ((ranker_dir, "ScheduleRanker"), (arch_dir, "ArchLatencyModel")):
        before = _snapshot(d)
        found = verify_model_dir(d)
        assert found.ok and found.kind == kind and found.problem == "" and found.line is None, found
        assert not found.repaired and found.moved_to is None and found.path == str(d)
        assert _snapshot(d) == before
        assert verify_model_dir(d, repair=True).ok and _snapshot(d) == before    # nothing to repair


def test_cut_booster_is_named_with_its_line_and_repair_moves_the_model_aside(ranker_dir: Path) -> None:
    booster = ranker_dir / "booster_0.json"
    booster.write_bytes(booster.read_bytes()[:-40])
    before = _snapshot(ranker_dir)
    found = verify_model_dir(ranker_dir)
    assert not found.ok and found.line == 1 and found.problem.startswith("booster_0.json: not JSON"), found
    assert _snapshot(ranker_dir) == before                # nothing written without repair
    fixed = verify_model_dir(ranker_dir, repair=True)
    assert fixed.repaired and not fixed.ok and fixed.problem == found.problem
    aside = Path(fixed.moved_to)
    assert not ranker_dir.exists() and aside.name.startswith("ranker.damaged-") and _snapshot(aside) == before


def test_flipped_byte_in_the_training_arrays(ranker_dir: Path) -> None:
    npz = ranker_dir / "train.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    found = verify_model_dir(ranker_dir)
    assert not found.ok and found.kind == "ScheduleRanker" and found.line is None
    assert "train.npz" in found.problem, found      # unreadable, or not matching the digest in meta.json


def test_wrong_feature_version_and_unknown_kind(ranker_dir: Path) -> None:
    meta_path = ranker_dir / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "feature_version": 999}))
    found = verify_model_dir(ranker_dir)
    assert not found.ok and "features of version 999" in found.problem, found
    meta_path.write_text(json.dumps({**meta, "kind": "Mystery"}))
    found = verify_model_dir(ranker_dir)
    assert not found.ok and found.kind is None and "unknown cost-model kind 'Mystery'" in found.problem
    meta_path.unlink()
    found = verify_model_dir(ranker_dir)
    assert not found.ok and "meta.json: unreadable" in found.problem
