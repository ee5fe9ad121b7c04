"""The executor contract (`Executor`, `Pending`, the row an evaluation turns into), executor URLs and
the `LocalExecutor`; the package docstring (`nacos.executors`) says what the contract promises."""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nacos.errors import ConfigError, NacosError, disk_full_cause
from nacos_base.records import Evaluation, Status

__all__ = ["Executor", "ExecutorError", "ExecutorSpec", "LocalExecutor", "Pending", "evaluate_one",
           "make_executor", "parse_executor_url"]


class ExecutorError(NacosError):
    """The executor itself failed (bad URL, unreachable scheduler, an evaluator that cannot be shipped)."""


def evaluate_one(evaluate: Callable[[Any], Any], genome: Any) -> Evaluation:
    """Run `evaluate(genome)` and turn what it returned (or raised) into the row to commit."""
    t0 = time.time()
    try:
        result = evaluate(genome)
    except Exception as exc:  # noqa: BLE001  (a failing candidate is data, not the end of the search)
        if disk_full_cause(exc) is not None:
            raise  # not the candidate's fault: its row stays unfinished, the search stops, a rerun resumes
        return Evaluation(Status.FAILED, {}, f"{type(exc).__name__}: {exc}".strip()[:2000], time.time() - t0)
    seconds = time.time() - t0
    if isinstance(result, Mapping):
        return Evaluation(Status.OK, dict(result), "", seconds)
    status = getattr(result, "status", None)
    if status not in (Status.OK, Status.REJECTED, Status.FAILED):
        return Evaluation(Status.FAILED, {}, f"evaluate returned {type(result).__name__} with status {status!r}",
                          seconds)
    return Evaluation(status, dict(getattr(result, "metrics", {}) or {}), str(getattr(result, "reason", "") or ""),
                      float(getattr(result, "seconds", 0.0) or seconds))


# ---------------------------------------------------------------------------------------------------
# URLs
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExecutorSpec:
    """A parsed executor URL: kind ``local`` or ``dask``; for dask either `address` or `local_workers`."""

    kind: str
    address: str = ""          # tcp://HOST:PORT of an existing scheduler
    local_workers: int = 0     # > 0: start a LocalCluster of this many worker processes


_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.\-]*):(\d{1,5})$")
_URL_HELP = "local, dask://HOST:PORT (a running Dask scheduler) or dask://local:N (N local worker processes)"


def parse_executor_url(url: str) -> ExecutorSpec:
    """`url` checked and parsed; a `ConfigError` naming the ``executor`` key says what is wrong."""
    if not isinstance(url, str) or not url:
        raise ConfigError(f"executor: must be {_URL_HELP}, got {url!r}")
    if url == "local":
        return ExecutorSpec("local")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme != "dask":
        raise ConfigError(f"executor: unknown executor {url!r}; use {_URL_HELP}"
                          + (" (Ray is not supported: see docs/scale-out.md)" if scheme == "ray" else ""))
    if rest.startswith("local:"):
        n = rest[len("local:"):]
        if not n.isdigit() or not 1 <= int(n) <= 1024:
            raise ConfigError(f"executor: {url!r}: dask://local:N needs N in 1..1024 worker processes")
        return ExecutorSpec("dask", local_workers=int(n))
    m = _HOST_PORT.match(rest)
    if not m or not 1 <= int(m.group(2)) <= 65535:
        raise ConfigError(f"executor: {url!r} is not dask://HOST:PORT (for example dask://10.0.0.5:8786) "
                          f"nor dask://local:N")
    return ExecutorSpec("dask", address=f"tcp://{rest}")


def make_executor(executor: str | Executor | None) -> Executor:
    """The executor named by `executor` (a URL; None: local); an `Executor` instance passes through."""
    if isinstance(executor, Executor):
        return executor
    spec = parse_executor_url("local" if executor is None else executor)
    if spec.kind == "local":
        return LocalExecutor()
    from nacos.executors.dask_cluster import DaskExecutor

    return DaskExecutor(executor)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------
# The contract
# ---------------------------------------------------------------------------------------------------
class Pending(ABC):
    """One submitted evaluation."""

    @abstractmethod
    def result(self) -> Evaluation:
        """Block until done; the row to commit (a candidate that killed its workers: ``failed``)."""

    def cancel(self) -> None:
        """Give up on it (the driver is stopping); its store row stays unfinished and is requeued."""


class Executor(ABC):
    """Runs evaluations somewhere; see the module docstring for the contract."""

    url: str = ""

    def start(self) -> None:
        """Acquire the resources (connect, start a cluster); idempotent."""

    @abstractmethod
    def submit(self, evaluate: Callable[[Any], Any], genome: Any) -> Pending:
        """Start evaluating `genome`."""

    def close(self) -> None:
        """Release what `start` acquired (a cluster it started is shut down); idempotent."""

    def describe(self) -> str:
        return self.url

    def __enter__(self) -> Executor:  # noqa: PYI034
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Done(Pending):
    def __init__(self, row: Evaluation) -> None:
        self._row = row

    def result(self) -> Evaluation:
        return self._row


class LocalExecutor(Executor):
    """In the driver's process, at submit time: exactly the sequential search."""

    url = "local"

    def submit(self, evaluate: Callable[[Any], Any], genome: Any) -> Pending:
        return _Done(evaluate_one(evaluate, genome))
