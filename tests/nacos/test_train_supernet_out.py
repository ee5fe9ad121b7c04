"""`nacos train-supernet --out`: never into the package, never over another run's checkpoint without --force;
refused before any training."""

import subprocess
import sys

from archspace.training import default_checkpoint_path


def _train(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nacos", "train-supernet", "--quiet", *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=cwd)


def test_the_packaged_checkpoint_and_bad_names_are_refused_before_training(tmp_path):
    packaged = default_checkpoint_path()
    before = packaged.stat().st_mtime_ns if packaged.exists() else None
    res = _train("--data", "digits", "--out", packaged, "--checkpoint-dir", tmp_path / "ck")
    assert res.returncode == 2 and "inside the package" in res.stderr and "--force" in res.stderr
    assert (packaged.stat().st_mtime_ns if packaged.exists() else None) == before
    assert not (tmp_path / "ck").exists()  # refused before training began
    res = _train("--data", "digits", "--out", tmp_path / "model.bin", "--checkpoint-dir", tmp_path / "ck")
    assert res.returncode == 2 and "must be a .pt file" in res.stderr


def test_a_real_run_writes_its_out_and_a_second_one_will_not_overwrite_it(tmp_path):
    out = tmp_path / "mine" / "supernet.pt"
    common = ["--data", "digits", "--epochs", "1", "--limit-train", "128", "--batch-size", "64",
              "--n-random", "0", "--checkpoint-dir", tmp_path / "ck"]
    res = _train(*common, "--out", out)
    assert res.returncode == 0, res.stderr[-2000:]
    assert out.is_file() and out.with_suffix(".json").is_file()
    stamp = out.stat().st_mtime_ns
    again = _train(*common, "--out", out)
    assert again.returncode == 2 and "exists" in again.stderr and out.stat().st_mtime_ns == stamp
    # without --out the checkpoint goes to runs/supernet-<data>.pt under the working directory
    res = _train(*common, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "runs" / "supernet-digits.pt").is_file()
