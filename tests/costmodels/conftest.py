"""Shared fixtures: one real MetaSchedule tuning (2 workloads x 12 measured traces) for the whole
session, made by `schedules.testing.tune_workloads` (what benchmarks/cost_model_quality.py tunes with),
and synthetic data with a known order."""

from __future__ import annotations

import pytest

from costmodels.datasets import NB201_DEFAULT_PATH

#: Measured traces per workload in the session tuning (its cost is mostly the builder and runner start-up).
TRIALS = 12


@pytest.fixture(scope="session")
def ms_work_dir(tmp_path_factory):
    """A real MetaSchedule JSON database per quick-benchmark workload, tuned on this machine."""
    from schedules.testing import QUICK_WORKLOADS, tune_workloads

    root = tmp_path_factory.mktemp("ms_tuning")
    (db_dir,) = tune_workloads(root, QUICK_WORKLOADS, TRIALS, seed=0, combined=True, log=lambda *_: None)
    return db_dir


@pytest.fixture(scope="session")
def ms_by_workload(ms_work_dir):
    """The real records grouped by workload: {key: [ScheduleSample, ...]}, in a fixed order."""
    from costmodels.testing import schedule_samples

    by_wl, _ = schedule_samples([ms_work_dir])
    return dict(sorted(by_wl.items()))


@pytest.fixture(scope="session")
def nb201_path():
    if not NB201_DEFAULT_PATH.is_file():
        pytest.skip(f"NAS-Bench-201 table absent ({NB201_DEFAULT_PATH}); see ../shared/DATA.md")
    return NB201_DEFAULT_PATH
