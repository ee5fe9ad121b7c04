"""The generic search loop: a strategy, an evaluation function and a results store; resume built in.

`run_search` knows nothing of TVM, supernets or tables: `evaluate(genome)` returns an evaluation (an
object with `status` ok / rejected / failed, `metrics` and `reason`, such as
`nacos.evaluation.Evaluation`, or a plain metrics mapping meaning ok), or raises, which records the
candidate as failed with the exception as its reason. The loop:

1. checks that the store was started by the same strategy (name, seed, objectives, settings): resuming
   with another seed would silently break the promise below;
2. replays the store's committed rows into the strategy in sequence order, and re-evaluates rows a
   crash left unfinished (same sequence number, one more attempt), so nothing committed is lost and
   nothing is counted twice;
3. asks, records the candidate as ``running``, evaluates, commits the final row, and only then tells
   the strategy; until the store holds `n_trials` final rows, the time limit passes, or the strategy
   runs out of new candidates.

With a deterministic evaluation, a run killed at any moment and rerun proposes exactly the candidates
an uninterrupted run proposes (the strategy's state is a function of its seed and told history).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nacos.errors import NacosError
from nacos.pareto import pareto_front
from nacos.store import CandidateRecord, ResultsStore
from nacos.strategies.base import SearchExhausted, Strategy

__all__ = ["SearchSummary", "front_records", "objective_values", "run_search"]

_FINGERPRINT_KEY = "strategy"


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

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "front": list(self.front)}


def objective_values(strategy: Strategy, status: str, metrics: Mapping[str, Any]) -> tuple[tuple[float, ...] | None, str]:
    """The strategy's objective vector from a row's metrics (None when missing), and why if missing."""
    if status == "failed":
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
        if r.status != "ok":
            continue
        values, _ = objective_values(strategy, r.status, r.metrics)
        if values is not None:
            rows.append(r)
            points.append(values)
    if not rows:
        return []
    return [rows[i] for i in pareto_front(points, [o.sense for o in strategy.objectives])]


def _evaluate(evaluate: Callable[[Any], Any], genome: Any) -> tuple[str, dict[str, Any], str, float]:
    t0 = time.time()
    try:
        result = evaluate(genome)
    except Exception as exc:  # noqa: BLE001  (a failing candidate is data, not the end of the search)
        return "failed", {}, f"{type(exc).__name__}: {exc}".strip()[:2000], time.time() - t0
    seconds = time.time() - t0
    if isinstance(result, Mapping):
        return "ok", dict(result), "", seconds
    status = getattr(result, "status", None)
    if status not in ("ok", "rejected", "failed"):
        return "failed", {}, f"evaluate returned {type(result).__name__} with status {status!r}", seconds
    return status, dict(getattr(result, "metrics", {}) or {}), str(getattr(result, "reason", "") or ""), \
        float(getattr(result, "seconds", 0.0) or seconds)


def _tell(strategy: Strategy, genome: Any, record: CandidateRecord) -> None:
    values, _ = objective_values(strategy, record.status, record.metrics)
    strategy.tell(genome, values, record.status == "ok")


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


def run_search(strategy: Strategy, evaluate: Callable[[Any], Any], store: ResultsStore, n_trials: int,
               time_limit: float | None = None, progress: bool = True,
               on_record: Callable[[CandidateRecord], None] | None = None) -> SearchSummary:
    """Run (or resume) a search until `store` holds `n_trials` final rows.

    `time_limit` (seconds, this call only) stops proposing new candidates once passed; the one being
    evaluated finishes. `on_record` is called with each committed row (for logs and live reports).
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 0:
        raise NacosError(f"n_trials: must be an int >= 0, got {n_trials!r}")
    if time_limit is not None and not (time_limit > 0):
        raise NacosError(f"time_limit: must be > 0 seconds, got {time_limit!r}")
    if strategy.history:
        raise NacosError("run_search needs a fresh strategy: its state is rebuilt from the store")
    t0 = time.monotonic()
    space = strategy.space

    # Step 1. Same search as the one that started this store?
    _check_fingerprint(strategy, store)

    # Step 2. Replay committed rows; evaluate again the ones a crash left unfinished, in sequence order.
    requeued = store.requeue()
    replayed = evaluated = 0
    bar = _progress_bar(progress, n_trials, store)
    try:
        for record in store.records():
            genome = space.parse(record.genome)
            if genome.id != record.id:
                raise NacosError(f"{store.path}: row {record.seq}: genome id {genome.id} does not match the stored "
                                 f"id {record.id} (was the space changed?)")
            if record.final:
                _tell(strategy, genome, record)
                replayed += 1
                continue
            store.start(record.seq)
            record = _commit(store, strategy, record.seq, evaluate, genome)
            evaluated += 1
            _tell(strategy, genome, record)
            _after(bar, record, on_record)

        # Step 3. The search proper: ask, mark running, evaluate, commit, tell.
        stopped_by = "trials"
        while store.n_completed() < n_trials:
            if time_limit is not None and time.monotonic() - t0 >= time_limit:
                stopped_by = "time_limit"
                break
            try:
                genome = strategy.ask()
            except SearchExhausted:
                stopped_by = "exhausted"
                break
            seq = store.add(genome.id, genome.to_json(), status="running")
            record = _commit(store, strategy, seq, evaluate, genome)
            evaluated += 1
            _tell(strategy, genome, record)
            _after(bar, record, on_record)
    finally:
        if bar is not None:
            bar.close()

    counts = store.counts()
    front = front_records(store.completed(), strategy)
    return SearchSummary(completed=counts["ok"] + counts["rejected"] + counts["failed"], ok=counts["ok"],
                         rejected=counts["rejected"], failed=counts["failed"], evaluated_now=evaluated,
                         replayed=replayed, requeued=requeued, stopped_by=stopped_by,
                         seconds=time.monotonic() - t0, front=tuple(r.seq for r in front))


def _commit(store: ResultsStore, strategy: Strategy, seq: int, evaluate: Callable[[Any], Any],
            genome: Any) -> CandidateRecord:
    status, metrics, reason, seconds = _evaluate(evaluate, genome)
    if status == "ok":
        # An "ok" without its objectives cannot be ranked: record it as failed, saying what is missing.
        values, why = objective_values(strategy, status, metrics)
        if values is None:
            status, reason = "failed", why
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
