"""The generic search loop: a strategy, an evaluation function and a results store; resume built in.

`run_search` knows nothing of TVM, supernets or tables: `evaluate(genome)` returns an evaluation (an
object with `status` ok / rejected / failed, `metrics` and `reason`, such as
`nacos.search.evaluation.Evaluation`, or a plain metrics mapping meaning ok), or raises, which records the
candidate as failed with the exception as its reason. The loop:

1. checks that the store was started by the same strategy (name, seed, objectives, settings) and the
   same `parallel`: resuming with another seed would silently break the promise below;
2. replays the store's rows: each is asked again in sequence order (the strategy must propose the
   stored genome) and its committed result told; rows a crash left unfinished are evaluated again
   (same sequence number, one more attempt), so nothing committed is lost and nothing counted twice;
3. asks, records the candidate as ``running`` and submits it to the executor, keeping up to
   `parallel` candidates in flight; the oldest is committed first, then told, so proposal n is asked
   once proposals 0 .. n - parallel are told, whichever executor ran them and whenever they finished;
   until the store holds `n_trials` final rows, the time limit passes, or the strategy runs out.

The driver (this function) alone writes the store; executors (`nacos.executors`: in this process, or
on Dask workers) only evaluate. With a deterministic evaluation, a run killed at any moment and rerun
proposes exactly the candidates an uninterrupted run with the same `parallel` proposes (the strategy's
state is a function of its seed and told history, and the window fixes when each ask happens), on any
executor.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nacos.errors import DiskFullError, NacosError, disk_full_cause
from nacos.executors import Executor, Pending, make_executor
from nacos.results.pareto import pareto_front
from nacos.results.store import CandidateRecord, ResultsStore
from nacos.strategies.base import SearchExhausted, Strategy
from nacos_base.records import Evaluation, Status

__all__ = ["SearchSummary", "front_records", "objective_values", "run_search"]

_FINGERPRINT_KEY = "strategy"
_PARALLEL_KEY = "parallel"


@dataclass(frozen=True)
class SearchSummary:
    """What one call of `run_search` did, and where the store stands."""

    completed: int                      # final rows in the store
    ok: int
    rejected: int
    failed: int
    evaluated_now: int                  # evaluations run by this call (re-evaluated orphans included)
    replayed: int                       # committed rows replayed into the strategy on start
    requeued: int                       # rows a crash had left unfinished, evaluated again
    stopped_by: str                     # trials | time_limit | exhausted
    seconds: float
    front: tuple[int, ...] = field(default=())   # seqs of the feasible Pareto front
    executor: str = "local"             # where the evaluations ran
    parallel: int = 1                   # candidates evaluated at once (the window)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "front": list(self.front)}


def objective_values(strategy: Strategy, status: str,
                     metrics: Mapping[str, Any]) -> tuple[tuple[float, ...] | None, str]:
    """The strategy's objective vector from a row's metrics (None when missing), and why if missing."""
    if status == Status.FAILED:
        return None, ""
    values = []
    for o in strategy.objectives:
        v = metrics.get(o.name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            return None, f"objective {o.name!r} missing or not a finite number in the metrics ({v!r})"
        values.append(float(v))
    return tuple(values), ""


def front_records(records: list[CandidateRecord], strategy: Strategy) -> list[CandidateRecord]:
    """The feasible (status ok) records on the Pareto front of the strategy's objectives."""
    rows, points = [], []
    for r in records:
        if r.status != Status.OK:
            continue
        values, _ = objective_values(strategy, r.status, r.metrics)
        if values is not None:
            rows.append(r)
            points.append(values)
    if not rows:
        return []
    return [rows[i] for i in pareto_front(points, [o.sense for o in strategy.objectives])]


def _tell(strategy: Strategy, genome: Any, record: CandidateRecord) -> None:
    values, _ = objective_values(strategy, record.status, record.metrics)
    strategy.tell(genome, values, record.status == Status.OK)


def _check_fingerprint(strategy: Strategy, store: ResultsStore) -> None:
    mine = strategy.fingerprint()
    stored = store.get_meta(_FINGERPRINT_KEY)
    if stored is None:
        if store.records():
            raise NacosError(f"{store.path}: holds candidates but no strategy record; it was not written by "
                             f"run_search and cannot be resumed")
        store.set_meta(_FINGERPRINT_KEY, mine)
        return
    if stored != mine:
        diff = sorted(k for k in set(stored) | set(mine) if stored.get(k) != mine.get(k))
        raise NacosError(f"{store.path}: this run was started with a different strategy ({', '.join(diff)} differ: "
                         f"stored {[stored.get(k) for k in diff]}, now {[mine.get(k) for k in diff]}); "
                         f"rerun with the original settings or use a new run directory")


@dataclass
class _Slot:
    """One asked candidate in the window: a stored final row being replayed, or an evaluation under way."""

    seq: int
    genome: Any
    record: CandidateRecord | None = None
    pending: Pending | None = None


def run_search(strategy: Strategy, evaluate: Callable[[Any], Any], store: ResultsStore, n_trials: int,
               time_limit: float | None = None, progress: bool = True,
               on_record: Callable[[CandidateRecord], None] | None = None,
               executor: str | Executor | None = None, parallel: int = 1,
               judge: Callable[[Evaluation], Evaluation] | None = None) -> SearchSummary:
    """Run (or resume) a search until `store` holds `n_trials` final rows.

    `time_limit` (seconds, this call only) stops proposing new candidates once passed; the ones being
    evaluated finish. `on_record` is called with each committed row (for logs and live reports).
    `executor` runs the evaluations (a URL for `nacos.executors.make_executor`, or an `Executor`, which
    is then left open; default: in this process). `parallel` is the window: proposal n is asked once
    proposal n - parallel is committed and told, so up to `parallel` candidates are evaluated at once;
    it changes what is proposed and must stay the same for the life of a store. `judge`, when given,
    may change each new evaluation before it is committed (in proposal order, on the driver: a budget
    derived from the rows committed so far, `nacos.search.population_budget`).
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 0:
        raise NacosError(f"n_trials: must be an int >= 0, got {n_trials!r}")
    if time_limit is not None and not (time_limit > 0):
        raise NacosError(f"time_limit: must be > 0 seconds, got {time_limit!r}")
    if isinstance(parallel, bool) or not isinstance(parallel, int) or not 1 <= parallel <= 4096:
        raise NacosError(f"parallel: must be an int in 1..4096, got {parallel!r}")
    if strategy.history:
        raise NacosError("run_search needs a fresh strategy: its state is rebuilt from the store")
    t0 = time.monotonic()

    # Step 1. Same search as the one that started this store?
    _check_fingerprint(strategy, store)
    _check_parallel(store, parallel)

    # Step 2. Rows a crash left running go back to pending; the stored rows are replayed below.
    requeued = store.requeue()
    stored = store.records()
    replayed = evaluated = 0
    owned = not isinstance(executor, Executor)
    ex = make_executor(executor)
    window: deque[_Slot] = deque()
    bar = _progress_bar(progress, n_trials, store)
    described = ex.url
    try:
        ex.start()
        described = ex.describe()
        i = 0
        asking = True
        stopped_by = "trials"
        while True:
            # Step 3. Fill the window. Stored rows come first, asked again in their original order (so
            # the strategy's state is rebuilt exactly, outstanding asks included) and checked against
            # the store; unfinished ones are evaluated again under the same sequence number.
            while len(window) < parallel and (i < len(stored) or asking):
                if i < len(stored):
                    record = stored[i]
                    i += 1
                    genome = _ask_again(strategy, store, record)
                    if record.final:
                        window.append(_Slot(record.seq, genome, record=record))
                    else:
                        store.start(record.seq)
                        window.append(_Slot(record.seq, genome, pending=ex.submit(evaluate, genome)))
                    continue
                if store.n_completed() + sum(s.record is None for s in window) >= n_trials:
                    asking = False
                elif time_limit is not None and time.monotonic() - t0 >= time_limit:
                    asking, stopped_by = False, "time_limit"
                else:
                    try:
                        genome = strategy.ask()
                    except SearchExhausted:
                        asking, stopped_by = False, "exhausted"
                        continue
                    seq = store.add(genome.id, genome.to_json(), status=Status.RUNNING)
                    window.append(_Slot(seq, genome, pending=ex.submit(evaluate, genome)))
            if not window:
                break
            # Step 4. The oldest proposal is committed (the driver alone writes the store, in proposal
            # order, so that a resume replays the same sequence), then told.
            slot = window.popleft()
            if slot.record is not None:
                _tell(strategy, slot.genome, slot.record)
                replayed += 1
                continue
            assert slot.pending is not None
            result = slot.pending.result()
            record = _commit(store, strategy, slot.seq, judge(result) if judge is not None else result)
            evaluated += 1
            _tell(strategy, slot.genome, record)
            _after(bar, record, on_record)
    except Exception as exc:
        cause = disk_full_cause(exc)
        if cause is None:
            raise
        raise _disk_full(store, cause) from exc
    finally:
        for slot in window:          # stopping early: their rows stay unfinished and are requeued on resume
            if slot.pending is not None:
                slot.pending.cancel()
        if bar is not None:
            bar.close()
        if owned:
            ex.close()

    counts = store.counts()
    front = front_records(store.completed(), strategy)
    return SearchSummary(completed=counts["ok"] + counts["rejected"] + counts["failed"], ok=counts["ok"],
                         rejected=counts["rejected"], failed=counts["failed"], evaluated_now=evaluated,
                         replayed=replayed, requeued=requeued, stopped_by=stopped_by,
                         seconds=time.monotonic() - t0, front=tuple(r.seq for r in front),
                         executor=described, parallel=parallel)


def _disk_full(store: ResultsStore, cause: BaseException) -> DiskFullError:
    """The error of a search stopped by a full disk: what is kept, and how to go on."""
    try:
        kept = f"the {store.n_completed()} candidates committed before are kept in {store.path}"
    except Exception:  # the store could not even be read: say only what is sure
        kept = f"every candidate committed before is kept in {store.path} (an SQLite transaction is all or nothing)"
    if isinstance(cause, DiskFullError):
        cause_text = str(cause)
    else:
        cause_text = f"{type(cause).__name__}: {cause}"
    return DiskFullError(f"disk full while the search was writing ({cause_text}); nothing committed is lost: {kept}. "
                         f"Free some space and rerun the same command: it resumes, and the candidates that were in "
                         f"flight are evaluated again")


def _ask_again(strategy: Strategy, store: ResultsStore, record: CandidateRecord) -> Any:
    """The strategy's next proposal, which must be the stored row `record` (a resumed run re-asks)."""
    genome = strategy.space.parse(record.genome)
    if genome.id != record.id:
        raise NacosError(f"{store.path}: row {record.seq}: genome id {genome.id} does not match the stored "
                         f"id {record.id} (was the space changed?)")
    try:
        asked = strategy.ask()
    except SearchExhausted as exc:
        raise NacosError(f"{store.path}: row {record.seq}: the strategy proposes nothing more where the store "
                         f"holds {record.id}; the store was written by another version of the strategy") from exc
    if asked.id != record.id:
        raise NacosError(f"{store.path}: row {record.seq}: the strategy now proposes {asked.id} where the store "
                         f"holds {record.id}; the store was written by another version of the strategy or "
                         f"space, or with another `parallel`; use a new run directory")
    return asked


def _check_parallel(store: ResultsStore, parallel: int) -> None:
    stored = store.get_meta(_PARALLEL_KEY)
    if stored is None:
        if store.records():
            stored = 1       # written before the window existed: one candidate at a time
        else:
            store.set_meta(_PARALLEL_KEY, parallel)
            return
    if stored != parallel:
        raise NacosError(f"{store.path}: this run was started with parallel={stored} (candidates evaluated at "
                         f"once), now {parallel}; it changes what is proposed: rerun with parallel={stored} or "
                         f"use a new run directory")


def _commit(store: ResultsStore, strategy: Strategy, seq: int, row: Evaluation) -> CandidateRecord:
    status, metrics, reason, seconds = row.status, row.metrics, row.reason, row.seconds
    if status == Status.OK:
        # An "ok" without its objectives cannot be ranked: record it as failed, saying what is missing.
        values, why = objective_values(strategy, status, metrics)
        if values is None:
            status, reason = Status.FAILED, why
    return store.finish(seq, status, metrics, reason, seconds)


def _progress_bar(progress: bool, total: int, store: ResultsStore) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=min(store.n_completed(), total), unit="cand", desc="search",
                file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


def _after(bar: Any, record: CandidateRecord, on_record: Callable[[CandidateRecord], None] | None) -> None:
    if bar is not None:
        bar.update(1)
        bar.set_postfix_str(f"{record.status} {record.id}", refresh=False)
    if on_record is not None:
        on_record(record)
