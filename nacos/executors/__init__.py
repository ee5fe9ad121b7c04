"""Where candidates are evaluated: in this process (`LocalExecutor`, the default) or on the workers of a
Dask cluster (`DaskExecutor`). The search driver alone asks, commits and tells (`nacos.search.loop`); an
executor only runs `evaluate(genome)` somewhere and hands back what it returned.

An executor is named by a URL (`make_executor`, the run config's ``executor`` key, ``--executor``):

- ``local``: evaluate in the driver's process, one candidate at a time (the behaviour before executors);
- ``dask://HOST:PORT``: connect to a running Dask scheduler (``dask scheduler`` / ``dask worker``, see
  docs/scale-out.md); the cluster is left running at the end;
- ``dask://local:N``: start a `distributed.LocalCluster` of N worker processes with one thread each on
  this machine, bound to 127.0.0.1, and shut it down at the end.

Contract of `Executor`:

- ``submit(evaluate, genome)`` starts one evaluation and returns a `Pending` whose ``result()`` blocks
  and returns an `Evaluation` (``status``, ``metrics``, ``reason``, ``seconds``: `nacos_base.records`),
  the row to commit (`evaluate_one`'s form). A
  candidate whose evaluation raised is ``failed`` with the exception as its reason; so is one whose
  evaluation killed more workers than the cluster allows (Dask's ``KilledWorker``). A fault of the
  cluster itself (scheduler gone, evaluator that cannot be serialised) raises `ExecutorError`.
- Results come back to the driver; workers never write the results store.
- `LocalExecutor` evaluates at ``submit`` time, so that an evaluator with driver-side state (the
  two-stage latency screen learns from every committed row) sees the same state, the one at the time
  the candidate was asked, whichever executor runs it. `DaskExecutor` serialises the evaluator at
  ``submit`` time for the same reason.
- Thread safety: none; one driver thread submits and collects.

Why Dask and not Ray (docs/scale-out.md has the longer story): the workload is a few hundred coarse,
independent, seconds-to-minutes tasks whose results go back to one driver; Dask distributed is pure
Python wheels (a few MB, installs in seconds here), already reschedules the task of a worker that died
(``allowed_failures``) and its nanny restarts the worker. Ray's wheel is several hundred MB and brings
its own object store and raylet, which this workload does not use.
"""

from __future__ import annotations

from nacos.executors.base import (
                                  Executor,
                                  ExecutorError,
                                  ExecutorSpec,
                                  LocalExecutor,
                                  Pending,
                                  evaluate_one,
                                  make_executor,
                                  parse_executor_url,
)
from nacos.executors.dask_cluster import DaskExecutor

__all__ = ["DaskExecutor", "Executor", "ExecutorError", "ExecutorSpec", "LocalExecutor", "Pending",
           "evaluate_one", "make_executor", "parse_executor_url"]
