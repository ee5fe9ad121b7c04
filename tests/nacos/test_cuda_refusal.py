"""`--target cuda` on a machine without CUDA: exit 2 with what is missing, and no run directory left behind."""

import subprocess
import sys

import pytest

from schedules.targets import cuda_available, cuda_missing


@pytest.mark.skipif(cuda_available(), reason="a CUDA device is present: the refusal does not apply")
def test_search_on_cuda_without_a_gpu_is_refused_before_anything_is_written(tmp_path):
    run_dir = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "nacos", "search", "--target", "cuda", "--run-dir", str(run_dir)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "target: cuda needs a CUDA device" in res.stderr and cuda_missing() in res.stderr
    assert not run_dir.exists() and sorted(p.name for p in tmp_path.iterdir()) == []
