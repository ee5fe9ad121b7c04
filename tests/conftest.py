"""Suite-wide settings.

torch runs single-threaded in the tests: with two threads on a 2-core machine that is also running a
TVM build or another test process, torch's spinning worker threads slow a small training step
five-fold (measured: 4.7 s vs 27 s for one epoch of the training test).
"""

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (setup.cfg): one worker per core, at most 4, or ``$NACOS_TEST_WORKERS``. Measured on the
    2-core CI machine: the whole suite in 1,512 s with two workers, 3,160 s in one process; more workers
    than 4 would mostly add TVM builds competing for the same cores."""
    import os

    if os.environ.get("NACOS_TEST_WORKERS"):
        return int(os.environ["NACOS_TEST_WORKERS"])
    return max(1, min(4, len(os.sched_getaffinity(0))))


# -- benchmarks are run as their users run them: `python -m benchmarks.NAME ...` in a process of its own ---
ROOT = Path(__file__).resolve().parent.parent


def _run_benchmark(name: str, argv: Sequence[object] = (), *, expect: int | None = 0, timeout: float = 1800,
                   env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m benchmarks.<name> <argv>`` from the repository root; fail the test, with the tail of
    its stderr, when its exit code is not `expect` (None: any). No test imports a benchmark script: the
    benchmark runs the way its README tells a user to run it, in a process of its own (so its thread pools
    and TVM's global state never leak into the test process, or the other way round)."""
    cmd = [sys.executable, "-m", f"benchmarks.{name}", *map(str, argv)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    if expect is not None and proc.returncode != expect:
        pytest.fail(f"{' '.join(cmd[1:])} exited {proc.returncode} (expected {expect})\n"
                    f"--- stderr (tail) ---\n{proc.stderr[-4000:]}\n--- stdout (tail) ---\n{proc.stdout[-2000:]}")
    return proc


@pytest.fixture
def run_benchmark() -> Callable[..., subprocess.CompletedProcess]:
    """`_run_benchmark`: ``run_benchmark("inner_loop", ["--quick", ...])`` returns the finished process."""
    return _run_benchmark
