"""`nacos tune`, `nacos eval` and `nacos export` on real ONNX files, real TVM builds and a real run
directory: a tiny space with its own one-epoch supernet (as in test_search_tvm.py), one two-stage
candidate tuned with one explicit config per workload, and a one-candidate baseline run."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from archspace import Architecture, ArchSpace, SpaceConfig
from archspace.data import load_dataset
from archspace.supernet import Supernet
from archspace.training import TrainConfig, finalize_checkpoint, train_supernet
from nacos.cli import main
from nacos.config import config_from_dict
from nacos.search.run import run_search

SPACE = {"resolutions": [16], "width_mults": [1.0], "kernel_sizes": [3, 5], "expand_ratios": [3], "depths": [1, 2],
         "stem_channels": 8, "stage_channels": [8, 16], "stage_strides": [2, 2], "head_channels": 16}
SMALL = {"resolution": 16, "width_mult": 1.0, "depths": [1, 1], "kernel_sizes": [[3], [3]], "expand_ratios": [[3], [3]]}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
FAST = ["--repeats", "3", "--warmup", "1"]


def _nacos(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nacos", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env=ENV, check=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny supernet, a two-stage run of one candidate (its database) and a baseline run of one."""
    tmp = tmp_path_factory.mktemp("tools")
    torch.manual_seed(0)
    train_supernet(Supernet(ArchSpace(SpaceConfig.from_dict(SPACE)), 1, 10), load_dataset("digits"),
                   TrainConfig(epochs=1, batch_size=64, n_random=0), tmp / "ckpt", progress=False)
    checkpoint = str(finalize_checkpoint(tmp / "ckpt", tmp / "tiny.pt"))
    base = {"trials": 1, "data": "digits", "checkpoint": checkpoint, "space": SPACE,
            "strategy": {"population": 2, "sample_size": 2},
            "tuning": {"repeats": 3, "warmup": 1, "trials_per_workload": 1, "searcher": "explicit",
                       "database": str(tmp / "db")}}
    two = run_search(config_from_dict({**base, "mode": "two-stage"}), tmp / "two", progress=False)
    assert two["ok"] == 1, two
    one = run_search(config_from_dict({**base, "mode": "baseline", "baseline_latency": "default-schedule"}),
                     tmp / "base", progress=False)
    assert one["ok"] == 1, one
    (tmp / "space.json").write_text(json.dumps(SPACE))
    (tmp / "small.json").write_text(json.dumps(SMALL))
    return {"tmp": tmp, "checkpoint": checkpoint, "db": tmp / "db", "two": tmp / "two", "base": tmp / "base"}


def _run_json(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else None), out.err


def _load_and_run(lib_path, onnx_path, shape):
    """The exported library, loaded back as a deployment would, against onnxruntime."""
    import onnxruntime as ort
    import tvm
    from tvm import relax

    x = np.random.default_rng(7).standard_normal(shape).astype("float32")
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(lib_path)), tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(x)).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(want).max())))


def test_export_baseline_run_under_a_latency(world, capsys):
    run = world["base"]
    row = json.loads((run / "report" / "candidates.json").read_text())[0]
    code, card, err = _run_json(capsys, "export", str(run), "--pick", f"under:{row['latency_ms'] * 1.01}", "--json",
                                "--quiet")
    assert code == 0, err
    assert card["out"] == str(run / "export" / row["arch_id"]) and card["schedules"].startswith("default schedule")
    assert card["metrics"]["latency_backend"] == "tvm-default-schedule"
    _load_and_run(run / "export" / row["arch_id"] / "model.so", run / "export" / row["arch_id"] / "model.onnx",
                  card["inputs"]["input"])


def test_pick_by_candidate_or_architecture_id(world):
    from nacos.tools.export import pick_candidate

    rows = json.loads((world["base"] / "report" / "candidates.json").read_text())
    store_rows = [{"id": r["id"], "seq": r["seq"], "status": r["status"], "reason": r.get("reason", ""),
                   "metrics": {k: r[k] for k in ("arch_id", "accuracy", "latency_ms")}} for r in rows]
    for key in (rows[0]["id"], rows[0]["arch_id"]):
        assert pick_candidate(store_rows, key).row["id"] == rows[0]["id"]
    failed = [{**store_rows[0], "status": "failed", "reason": "latency: wrong result"}]
    with pytest.raises(Exception, match="is failed \\(latency: wrong result\\); only ok candidates"):
        pick_candidate(failed, rows[0]["id"])


@pytest.mark.parametrize("pick, message", [
    ("under:0.000001", "no ok candidate at or under 1e-06 ms (the fastest ok one runs in"),
    ("under:fast", "LATENCY_MS must be a positive number"),
    ("cafebabe0000", "no candidate or architecture of that id"),
])
def test_export_bad_pick_exits_2_and_writes_nothing(world, capsys, pick, message):
    before = sorted(p.name for p in world["base"].iterdir())
    assert main(["export", str(world["base"]), "--pick", pick]) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in world["base"].iterdir()) == before


def test_export_refuses_missing_foreign_and_empty_runs(world, capsys, tmp_path):
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    assert main(["export", str(tmp_path / "foreign")]) == 2
    assert "not a nacos run directory" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "foreign").iterdir()] == ["notes.txt"]
    # a run whose only candidate was rejected has nothing to export
    cfg = {"mode": "baseline", "baseline_latency": "onnxruntime", "trials": 1, "data": "digits",
           "checkpoint": world["checkpoint"], "space": SPACE, "budgets": {"latency_ms": 1e-6},
           "strategy": {"population": 2, "sample_size": 2}, "tuning": {"repeats": 2, "warmup": 0}}
    run_search(config_from_dict(cfg), tmp_path / "none", progress=False)
    assert main(["export", str(tmp_path / "none")]) == 2
    assert "the run has no ok candidate" in capsys.readouterr().err
    assert not (tmp_path / "none" / "export").exists()


def test_cli_export_two_stage_best_end_to_end_writes_a_checked_deployable_package(world, tmp_path):
    out = tmp_path / "pkg"
    res = _nacos("export", str(world["two"]), "--pick", "best", "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("exported ") and "model.so" in res.stdout and "sha256" in res.stdout
    assert "stage" in res.stderr  # the progress bar, on stderr
    card = json.loads((out / "card.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "model.onnx", "model.so", "schedules.json",
                                                      "tuning-db"]
    on_disk = card
    assert on_disk["mode"] == "two-stage" and on_disk["picked"] == "best accuracy among ok candidates"
    assert on_disk["metrics"]["latency_ms"] > 0 and 0 <= on_disk["metrics"]["accuracy"] <= 1
    assert on_disk["check"]["matches_onnxruntime"] and "apache-tvm" in on_disk["versions"] and on_disk["date"]
    for name, f in on_disk["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == f["sha256"], name
    schedules = json.loads((out / "schedules.json").read_text())
    tuned = [w for w in schedules["workloads"] if w["tuned"]]
    assert tuned and all(w["record"] and w["run_ms"] > 0 for w in tuned)
    from schedules.targets import host_target, machine_key

    # tuned here, by this machine: nothing borrowed from another CPU's records
    assert all(w["measured_on"] == machine_key(host_target()) and not w["transferred"] for w in tuned)
    # the records travel as a MetaSchedule JSON database of their own, covering the same workloads
    from schedules.database import TuningDatabase

    assert sorted(TuningDatabase(out / "tuning-db").covered()) == sorted(w["structural_hash"] for w in tuned)
    _load_and_run(out / "model.so", out / "model.onnx", card["inputs"]["input"])
    res = _nacos("export", str(tmp_path / "nowhere"), "--json")
    assert res.returncode == 2 and "no such run directory" in res.stderr and "Traceback" not in res.stderr


def _other_arch(run_dir):
    """An architecture of the tiny space that the run did not evaluate (it shares stem and head)."""
    seen = {r["arch_id"] for r in json.loads((run_dir / "report" / "candidates.json").read_text())}
    for k in (3, 5):
        arch = Architecture.from_dict({**SMALL, "kernel_sizes": [[k], [3]]})
        if arch.id not in seen:
            return arch
    raise AssertionError("the run evaluated both candidates")


def test_tune_tunes_only_unseen_workloads_then_reuses_them(world, capsys, tmp_path):
    import shutil

    db = tmp_path / "db"
    shutil.copytree(world["db"], db)   # the run's database: stem, head and classifier are already tuned
    arch = _other_arch(world["two"])
    (tmp_path / "arch.json").write_text(arch.to_json())
    code, r, err = _run_json(capsys, "tune", str(tmp_path / "arch.json"), "--space", str(world["tmp"] / "space.json"),
                             "--database", str(db), "--trials-per-workload", "1", "--searcher", "explicit", "--json",
                             "--per-layer", *FAST)
    assert code == 0, err
    assert r["arch_id"] == arch.id and r["tuned"] > 0 and r["reused"] > 0 and r["tasks"] == r["tuned"] + r["reused"]
    assert 0 < r["hit_rate"] < 1 and r["trials"] >= r["tuned"] and r["tuned_ms"] > 0 and r["onnxruntime_ms"] > 0
    # per layer: every convolution and the classifier on both sides, paired in order, then "other" and "total"
    layers = r["per_layer"]
    assert [row["layer"].split()[0] for row in layers[-2:]] == ["other", "total"]
    paired = layers[:-2]
    assert paired and all(row["onnxruntime_us"] > 0 and row["tvm_us"] > 0 and row["ratio"] > 0 for row in paired)
    assert all(row["shape_match"] for row in paired) and "dense" in paired[-1]["layer"]
    assert layers[-1]["tvm_us"] >= sum(row["tvm_us"] for row in paired)
    # the exported ONNX of the same architecture now finds every workload in the database
    from archspace.export import export_onnx

    onnx_path = export_onnx(arch, tmp_path / "arch.onnx", space=ArchSpace(SpaceConfig.from_dict(SPACE)))
    assert main(["tune", str(onnx_path), "--database", str(db), "--quiet", *FAST]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["tasks", "tuned", "reused", "hit", "rate", "trials", "tuning", "s", "tuned", "ms",
                                "onnxruntime", "ms"]
    row = lines[3].split()
    assert row[1] == "0" and row[3] == "1.00" and row[4] == "0"


def test_tune_bad_inputs_exit_2_and_write_nothing(world, capsys, tmp_path):
    db = tmp_path / "db"
    bad_onnx = tmp_path / "broken.onnx"
    bad_onnx.write_bytes(b"not a protobuf")
    # a model that parses but fails the checker: a node reading a tensor nothing produces
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["nowhere"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    dangling = tmp_path / "dangling.onnx"
    onnx.save(helper.make_model(graph), str(dangling))
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({**SMALL, "resolution": 99}))
    malformed = tmp_path / "malformed.json"
    malformed.write_text('{"resolution": 16,')
    cases = [(bad_onnx, "broken.onnx: not a valid ONNX model"), (dangling, "dangling.onnx: not a valid ONNX model"),
             (outside, "outside.json: resolution: 99 not in the space's choices (16,)"),
             (malformed, "malformed.json: architecture: malformed JSON"),
             (tmp_path / "missing.onnx", "missing.onnx: no such file")]
    for path, message in cases:
        assert main(["tune", str(path), "--database", str(db), "--space", str(world["tmp"] / "space.json")]) == 2
        err = capsys.readouterr().err
        assert message in err, err
    # an ARCH.json of the tiny space is outside the default space
    assert main(["tune", str(world["tmp"] / "small.json"), "--database", str(db)]) == 2
    assert "resolution: 16 not in the space's choices (24, 28, 32)" in capsys.readouterr().err
    assert main(["tune", str(world["tmp"] / "small.json"), "--space", str(world["tmp"] / "space.json"),
                 "--database", str(db), "--target", "rpc://nohost"]) == 2
    assert "is not rpc://HOST:PORT/KEY" in capsys.readouterr().err
    assert main(["tune", str(world["tmp"] / "small.json"), "--space", str(world["tmp"] / "space.json"),
                 "--database", str(db), "--target", "rpc://h:9190/k", "--per-layer"]) == 2
    assert "--per-layer: profiles on this CPU only" in capsys.readouterr().err
    assert not db.exists()


def test_eval_scores_with_inherited_weights_and_the_tuned_database(world, capsys, tmp_path):
    row = json.loads((world["two"] / "report" / "candidates.json").read_text())[0]
    arch = tmp_path / "arch.json"   # the run's own architecture: every workload is in the run's database
    arch.write_text(json.dumps(row["genome"]) if isinstance(row["genome"], dict) else row["genome"])
    code, r, err = _run_json(capsys, "eval", str(arch), "--checkpoint", world["checkpoint"], "--data", "digits",
                             "--latency", "tvm-tuned", "--database", str(world["db"]), "--trials-per-workload", "1",
                             "--json", *FAST)
    assert code == 0, err
    assert r["status"] == "ok" and 0 <= r["accuracy"] <= 1 and r["macs"] > 0 and r["params"] > 0
    assert r["peak_memory_mb"] > 0 and r["latency_ms"] > 0 and r["latency_backend"] == "tvm-tuned"
    assert r["latency_tuned_tasks"] == 0 and r["latency_reused_tasks"] > 0 and r["arch_id"] == row["arch_id"]


def test_eval_refuses_an_architecture_outside_the_checkpoints_space(world, capsys):
    # the packaged checkpoint's space has no resolution 16
    assert main(["eval", str(world["tmp"] / "small.json"), "--data", "digits"]) == 2
    assert "small.json: resolution: 16 not in the space's choices (24, 28, 32)" in capsys.readouterr().err


def test_cli_eval_end_to_end_in_a_subprocess(world, tmp_path):
    arch = world["tmp"] / "small.json"
    res = _nacos("eval", str(arch), "--checkpoint", world["checkpoint"], "--data", "digits", "--json", *FAST)
    assert res.returncode == 0, res.stderr[-2000:]
    r = json.loads(res.stdout)
    assert r["latency_backend"] == "onnxruntime" and r["latency_ms"] > 0 and 0 <= r["accuracy"] <= 1
    res = _nacos("eval", "--help")
    assert res.returncode == 0 and "(default: onnxruntime)" in res.stdout and "--checkpoint" in res.stdout
