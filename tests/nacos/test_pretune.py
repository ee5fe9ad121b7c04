"""`nacos pretune`: the space's task enumeration against real sampled architectures, the exact expected
counts, and a real (tiny) MetaSchedule pretune that a kill interrupts and a rerun resumes."""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archspace import ArchSpace, export_onnx
from archspace.architecture import Architecture
from archspace.space import SpaceConfig

TINY = SpaceConfig(resolutions=(16,), width_mults=(1.0,), kernel_sizes=(3, 5), expand_ratios=(3, 4),
                   depths=(1, 2), stage_channels=(16, 24), stage_strides=(1, 2), head_channels=32)
#: one kernel, one expand ratio: 4 architectures in all, so expected counts can be checked exhaustively
MINI = SpaceConfig(resolutions=(16,), width_mults=(1.0,), kernel_sizes=(3,), expand_ratios=(3,),
                   depths=(1, 2), stage_channels=(16, 24), stage_strides=(1, 2), head_channels=32)
#: one stage: about ten tasks, the pretune test's space
ONE = SpaceConfig(resolutions=(16,), width_mults=(1.0,), kernel_sizes=(3,), expand_ratios=(3,), depths=(1, 2),
                  stage_channels=(24,), stage_strides=(2,), head_channels=32)


def _target():
    from schedules.targets import host_target

    return host_target(2)


def _tasks_of(arch: Architecture, space: ArchSpace, tmp: Path):
    from schedules.frontend import extract_workloads, import_onnx

    path = export_onnx(arch, tmp / f"{arch.id}.onnx", space=space, check=False)
    return extract_workloads(import_onnx(path), _target())


def test_enumeration_contains_every_sampled_task(tmp_path):
    from nacos.search.space_tasks import enumerate_space_tasks, space_task_file

    space = ArchSpace(TINY)
    tasks = enumerate_space_tasks(space, _target(), tmp_path / "db")
    keys = {t.key for t in tasks}
    assert len(keys) == len(tasks)
    rng = random.Random(3)
    for _ in range(3):
        arch = space.sample(rng)
        sampled = _tasks_of(arch, space, tmp_path)
        missing = [w.name for w in sampled if w.structural_hash not in keys]
        assert not missing, f"{arch.short()}: tasks not in the enumeration: {missing}"
    # heaviest first, every task carries its module, and the file is reused on the next call
    assert all(t.mod_json for t in tasks)
    order = [t.weight * max(t.workload.macs, 1) for t in tasks]
    assert order == sorted(order, reverse=True)
    assert space_task_file(tmp_path / "db", space, _target()).exists()
    again = enumerate_space_tasks(space, _target(), tmp_path / "db")
    assert [(t.key, t.weight) for t in again] == [(t.key, t.weight) for t in tasks]


def test_expected_counts_are_exact_on_an_exhaustive_space(tmp_path):
    """The weights equal the average task counts over every architecture (uniformly sampled)."""
    from nacos.search.space_tasks import enumerate_space_tasks

    space = ArchSpace(MINI)
    tasks = enumerate_space_tasks(space, _target(), tmp_path / "db")
    archs = [Architecture(16, 1.0, depths, tuple((3,) * d for d in depths), tuple((3,) * d for d in depths))
             for depths in itertools.product((1, 2), repeat=2)]
    totals: dict[str, float] = {}
    for arch in archs:
        for w in _tasks_of(arch, space, tmp_path):
            totals[w.structural_hash] = totals.get(w.structural_hash, 0.0) + w.count / len(archs)
    assert {t.key: pytest.approx(t.weight) for t in tasks} == totals


def test_task_file_refuses_damage(tmp_path):
    from schedules.errors import ScheduleError
    from schedules.records import LayerWorkload
    from schedules.space_tasks import SpaceTask, read_task_file, write_task_file

    w = LayerWorkload("t", "dense", ((1, 4),), (1, 2), structural_hash="abc", macs=8)
    path = tmp_path / "tasks.json"
    write_task_file(path, [SpaceTask(w, 1.5, "")], {"x": 1})
    tasks, meta = read_task_file(path)
    assert tasks[0].weight == 1.5 and meta == {"x": 1}
    body = json.loads(path.read_text())
    body["tasks"][0]["weight"] = 9.0
    path.write_text(json.dumps(body))
    with pytest.raises(ScheduleError, match="digest mismatch"):
        read_task_file(path)
    path.write_text("{not json")
    with pytest.raises(ScheduleError, match="not a readable space-task file"):
        read_task_file(path)


def _pretune_cmd(db: Path, space_file: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nacos", "pretune", "--space", str(space_file), "--database", str(db),
            "--threads", "2", "--tasks-per-round", "3", "--trials-per-round", "8", "--max-trials-per-task", "8",
            *extra]


@pytest.mark.slow
def test_pretune_is_killed_and_resumes(tmp_path):
    """A real pretune of the ONE space, killed with SIGKILL in its second round, resumed by the same command:
    the records measured before the kill stay, the rerun tunes only what is still under the cap, and the
    JSON summary reports the coverage."""
    from schedules.database import TuningDatabase
    from schedules.pretune import task_trials

    space_file = tmp_path / "space.json"
    space_file.write_text(ONE.to_json())
    db = tmp_path / "db"
    env = {**os.environ, "TVM_NUM_THREADS": "2"}
    # a deadline that lands inside a round ends it cleanly (the measure callback ends the round after the
    # trials are stored); MetaSchedule's own cost model here, the database-trained default below
    first = subprocess.run(_pretune_cmd(db, space_file, "--minutes", "0.2", "--json", "--cost-model", "metaschedule"),
                           env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads(first.stdout)["stopped"] == "deadline"
    assert json.loads(first.stdout)["cost_model"] == "metaschedule"
    proc = subprocess.Popen(_pretune_cmd(db, space_file, "--quiet"), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    from schedules.pretune import state_file
    from schedules.targets import host_target

    state = state_file(TuningDatabase(db, target=host_target()))  # this machine's pretune state
    assert state.name.startswith("pretune-state.llvm-") and state.exists()
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text()).get("rounds", 0) >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
    time.sleep(3)  # into the second round
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = task_trials(TuningDatabase(db))
    assert sum(n for n, _ in before.values()) >= 8
    out = subprocess.run(_pretune_cmd(db, space_file, "--json"), env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout)
    assert summary["stopped"] == "done"
    after = task_trials(TuningDatabase(db))
    for key, (n, _) in before.items():
        assert after[key][0] >= n  # nothing measured before the kill was lost
    cov = summary["coverage"]
    assert cov["tasks_covered"] == cov["tasks_total"] > 0
    assert cov["space_task_coverage"] == 1.0 and cov["space_mac_coverage"] == 1.0
    # a rerun has nothing left to do and says so
    again = subprocess.run(_pretune_cmd(db, space_file, "--json"), env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0 and json.loads(again.stdout)["trials"] == 0
    # the database-trained cost model (the default): pretrained on those records, it ranks one more round of
    # 4 trials a task (--tasks-per-round 1: one task), and is saved beside the database as XGBoost JSON (no pickle)
    more = subprocess.run([*_pretune_cmd(db, space_file, "--json"), "--tasks-per-round",
                           "1", "--max-trials-per-task", "12", "--trials-per-round", "4"], env=env,
                          capture_output=True, text=True, timeout=900)
    assert more.returncode == 0, more.stderr[-2000:]
    extra = json.loads(more.stdout)
    assert extra["cost_model"] == "database" and extra["trials"] >= 4
    saved = db / "ms_cost_model"
    assert (saved / "meta.json").is_file()
    assert not [p for p in saved.iterdir() if p.suffix in (".pkl", ".pickle")]
    from costmodels.ms_cost_model import DatabaseXGBCostModel

    model = DatabaseXGBCostModel.from_saved(saved)
    assert model.n_samples >= sum(n for n, _ in after.values())  # every record of the database, and the new ones


@pytest.fixture
def unnamed_metaschedule_handler():
    """An unnamed handler on MetaSchedule's logger, as earlier tests of one pytest process leave it:
    MetaSchedule's logger dictConfig names every attached handler and failed on it (CI, stop 18), until
    pretune tuned inside `schedules.tuner.named_handlers_only`."""
    logger = logging.getLogger("tvm.s_tir.meta_schedule")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.mark.slow
def test_ctrl_c_ends_the_round_in_flight_and_keeps_what_it_measured(tmp_path, unnamed_metaschedule_handler):
    """The first SIGINT inside a real MetaSchedule round ends that round at its next measured batch (a
    KeyboardInterrupt raised there is swallowed by TVM's C++ task scheduler, which tuned on): the pretune
    returns "interrupted", the state counts the round, the trials are in the database, and the process's
    own SIGINT handler is back."""
    from nacos.search.space_tasks import enumerate_space_tasks
    from schedules.database import TuningDatabase
    from schedules.pretune import PretuneSettings, pretune, state_of, task_trials

    target = _target()
    db = TuningDatabase(tmp_path / "db", target=target)
    tasks = enumerate_space_tasks(ArchSpace(ONE), target, db.path)
    handler = signal.getsignal(signal.SIGINT)
    sent = []

    def on_trials(n: int) -> None:
        if not sent:
            sent.append(n)
            os.kill(os.getpid(), signal.SIGINT)

    settings = PretuneSettings(tasks_per_round=3, trials_per_round=16, max_trials_per_task=16, seed=0)
    report = pretune(tasks, db, target, settings=settings, on_trials=on_trials)
    assert sent and report.stopped == "interrupted" and report.rounds == 1
    assert signal.getsignal(signal.SIGINT) is handler
    assert unnamed_metaschedule_handler in logging.getLogger("tvm.s_tir.meta_schedule").handlers  # put back
    db.refresh()
    measured = sum(n for n, _ in task_trials(db).values())
    assert 0 < measured < 3 * 16  # the round ended early, its trials kept
    state = state_of(db)
    assert state["rounds"] == 1 and state["trials"] == measured and not state.get("exhausted")


def test_tasks_never_tried_come_first(tmp_path):
    """Coverage before refinement: while a task of the space was never tried, a round holds only such
    tasks (first-pass trials each, heaviest gain first), however much a tuned heavy task could still gain;
    once every task was tried, rounds go back to the largest gains with the full trials."""
    from nacos.search.space_tasks import enumerate_space_tasks
    from schedules.database import TuningDatabase
    from schedules.pretune import PretuneSettings, choose_round

    target = _target()
    db = TuningDatabase(tmp_path / "db", target=target)
    tasks = [t for t in enumerate_space_tasks(ArchSpace(ONE), target, db.path) if t.weight > 0]
    assert len(tasks) >= 5
    settings = PretuneSettings(tasks_per_round=2, trials_per_round=32, max_trials_per_task=128, first_pass_trials=8)
    heavy = max(tasks, key=lambda t: t.expected_macs)
    # the heaviest task tuned once and still improving fast; all the others never tried
    trials = {heavy.key: (32, 5.0)}
    state = {"history": {heavy.key: [50.0, 5.0]}}
    batch, per_task = choose_round(tasks, db, state, settings, trials)
    assert per_task == 8 and len(batch) == min(4, len(tasks) - 1)  # first_pass_tasks: 2 x tasks_per_round
    assert heavy not in batch and all(trials.get(t.key, (0, None))[0] == 0 for t in batch)
    # a task that was tried and only failed is no longer "never tried"; the rest are tried: refinement rounds
    trials = {t.key: (8, 1.0) for t in tasks} | {heavy.key: (32, 5.0)}
    batch, per_task = choose_round(tasks, db, state, settings, trials)
    assert per_task == 32 and len(batch) == 2 and heavy in batch
    # the first pass never exceeds the round's or the task's cap
    assert PretuneSettings(trials_per_round=4, first_pass_trials=8).coverage_trials == 4
    with pytest.raises(Exception, match="first_pass_trials"):
        PretuneSettings(first_pass_trials=0)
