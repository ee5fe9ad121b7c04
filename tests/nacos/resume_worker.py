"""A search on a NAS-Bench-201 objective, run in a subprocess by test_resume.py and killed there.

    python tests/nacos/resume_worker.py STORE --strategy aging --seed 0 --trials 40
        [--objective table|closed] [--budget MS] [--delay S] [--kill-phase PHASE --kill-at K]

With --kill-phase the process sends itself SIGKILL (a real ``kill -9``: no cleanup, no atexit, no
flush) once K rows are committed, at one of these moments:
  after_commit   right after the K-th row is committed
  in_evaluate    while the (K+1)-th candidate is being evaluated (its row is ``running``)
  in_commit      inside the transaction that would commit the (K+1)-th row, before COMMIT
  in_add         inside the transaction that would insert the (K+1)-th row, before COMMIT
--delay sleeps in each evaluation, so that a kill from outside lands at a random moment.
Exit code 0 when the search completed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from archspace.nb201 import NB201Space
from nacos.results.store import ResultsStore
from nacos.search.loop import run_search
from nacos.strategies import make_strategy
from tests.nacos.nb201_objectives import TABLE_MISSING, closed_form, table

PHASES = ("after_commit", "in_evaluate", "in_commit", "in_add")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class _KillingConnection:
    """Wraps the store's sqlite3 connection; dies just before the COMMIT of a chosen transaction."""

    def __init__(self, conn, kind: str, armed) -> None:
        self._conn, self._kind, self._armed, self._current = conn, kind, armed, None

    def execute(self, sql: str, params=()):
        if sql.startswith("INSERT INTO candidates"):
            self._current = "add"
        elif sql.startswith("UPDATE candidates SET status = ?, reason = ?"):  # finish()
            self._current = "finish"
        elif sql == "COMMIT":
            if self._current == self._kind and self._armed():
                _die()
            self._current = None
        return self._conn.execute(sql, params)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("store", type=Path)
    p.add_argument("--strategy", default="aging")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--objective", choices=("table", "closed"), default="table")
    p.add_argument("--budget", type=float, default=None)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--kill-phase", choices=PHASES, default=None)
    p.add_argument("--kill-at", type=int, default=-1)
    args = p.parse_args(argv)

    if args.objective == "table":
        if TABLE_MISSING:
            print(TABLE_MISSING, file=sys.stderr)
            return 3
        base = table().objective("cifar10", "gold_6226", args.budget)
    else:
        def base(arch):
            return closed_form(arch, args.budget)
    objectives = [("accuracy", "max"), ("latency_ms", "min")] if args.strategy == "nsga2" else [("accuracy", "max")]
    settings = {"population": 8, "sample_size": 3} if args.strategy == "aging" else \
        {"population": 8} if args.strategy == "nsga2" else {}
    strategy = make_strategy(args.strategy, NB201Space(), args.seed, objectives=objectives, **settings)

    store = ResultsStore(args.store)
    committed = [store.n_completed()]

    def armed() -> bool:
        return committed[0] == args.kill_at

    if args.kill_phase in ("in_commit", "in_add"):
        store._conn = _KillingConnection(store._conn, "finish" if args.kill_phase == "in_commit" else "add", armed)

    def evaluate(arch):
        if args.kill_phase == "in_evaluate" and armed():
            _die()
        if args.delay:
            time.sleep(args.delay)
        return base(arch)

    def on_record(record) -> None:
        committed[0] += 1
        if args.kill_phase == "after_commit" and armed():
            _die()

    if args.kill_phase == "after_commit" and armed():
        _die()
    run_search(strategy, evaluate, store, args.trials, progress=False, on_record=on_record)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
