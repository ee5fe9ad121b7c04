"""The `DaskExecutor`: candidates evaluated as Dask tasks, the heavy parts of the evaluator shipped to each
worker once (see `nacos.executors` for the contract and docs/scale-out.md for why Dask)."""

from __future__ import annotations

import io
import pickle
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from nacos.errors import ConfigError
from nacos.executors.base import Executor, ExecutorError, Pending, evaluate_one, parse_executor_url
from nacos_base.records import Evaluation, Status

__all__ = ["DaskExecutor", "SHARE_MIN_BYTES"]

#: objects at least this large (tensors, arrays) are shipped to each Dask worker once, not with every task
SHARE_MIN_BYTES = 1 << 20


def _heavy(obj: Any) -> bool:
    """Worth shipping once per worker: a torch module, or a tensor / array of at least SHARE_MIN_BYTES."""
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(obj, torch.nn.Module):
            return True
        if isinstance(obj, torch.Tensor):
            return obj.numel() * obj.element_size() >= SHARE_MIN_BYTES
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, np.ndarray):
        return obj.nbytes >= SHARE_MIN_BYTES
    return False


def _sharing_pickler(file: io.BytesIO, share: Callable[[Any], str | None]) -> pickle.Pickler:
    import cloudpickle

    class SharingPickler(cloudpickle.Pickler):
        # pickle's persistent-id hook: a heavy object is written as a key, its bytes travel once (scatter)
        def persistent_id(self, obj: Any) -> str | None:  # noqa: D102
            return share(obj)

    return SharingPickler(file, protocol=pickle.HIGHEST_PROTOCOL)


class _SharedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, shared: Mapping[str, Any]) -> None:
        super().__init__(file)
        self._shared = shared

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        return self._shared[pid]


def _remote_evaluate(payload: bytes, genome: Any, keys: tuple[str, ...], *shared: Any) -> Evaluation:
    """The task a Dask worker runs: the evaluator (its heavy parts from the worker's memory) on one genome."""
    evaluate = _SharedUnpickler(io.BytesIO(payload), dict(zip(keys, shared))).load()
    return evaluate_one(evaluate, genome)


class _DaskPending(Pending):
    def __init__(self, future: Any, t0: float) -> None:
        self._future = future
        self._t0 = t0

    def result(self) -> Evaluation:
        from distributed import KilledWorker

        try:
            return self._future.result()
        except KilledWorker as exc:
            # Every worker that tried it died: the candidate is recorded as failed and the search goes on.
            return Evaluation(Status.FAILED, {}, f"KilledWorker: {exc}"[:2000], time.time() - self._t0)
        except Exception as exc:  # noqa: BLE001
            raise ExecutorError(f"dask: the evaluation of a candidate did not come back: "
                                f"{type(exc).__name__}: {exc}") from exc

    def cancel(self) -> None:
        try:
            self._future.cancel()
        except Exception:  # noqa: BLE001  (the cluster may already be gone)
            pass


class DaskExecutor(Executor):
    """Evaluations as Dask tasks (one per candidate, ``pure=False``).

    The evaluator is serialised with cloudpickle at each submit, except its heavy parts (torch modules,
    tensors and arrays of 1 MiB or more: the supernet, the data set), which are scattered to the workers
    once and picked up from their memory by every later task; they must not change during the run.
    `allowed_failures` (local clusters only; an existing scheduler keeps its own
    ``distributed.scheduler.allowed-failures``, default 3) is how many worker deaths a task survives
    before it is given up as ``KilledWorker``.
    """

    def __init__(self, url: str, allowed_failures: int = 2, connect_timeout: float = 30.0) -> None:
        self.spec = parse_executor_url(url)
        if self.spec.kind != "dask":
            raise ConfigError(f"executor: {url!r} is not a dask:// URL")
        if isinstance(allowed_failures, bool) or not isinstance(allowed_failures, int) or allowed_failures < 0:
            raise ConfigError(f"allowed_failures: must be an int >= 0, got {allowed_failures!r}")
        self.url = url
        self.allowed_failures = allowed_failures
        self.connect_timeout = connect_timeout
        self.client: Any = None
        self._cluster: Any = None
        self._shared: dict[int, tuple[Any, str, Any]] = {}   # id(obj) -> (obj, key, future)

    # -- life -----------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.client is not None:
            return
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise ExecutorError(f"executor {self.url}: needs the 'distributed' package ({exc})") from exc
        try:
            if self.spec.local_workers:
                # One task per single-threaded worker at a time: a worker that dies takes only its own
                # candidate with it (no innocent task counted as suspicious).
                # Dask's nannies set OMP_NUM_THREADS=1 in each worker, which TVM's runtime also takes as
                # its thread limit: a candidate would then be measured on one thread where the local
                # executor measures on every core. TVM_NUM_THREADS takes precedence, so that a run gives
                # the same latencies (and may be resumed) on either executor.
                from schedules.targets import host_threads

                with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
                    self._cluster = LocalCluster(n_workers=self.spec.local_workers, threads_per_worker=1,
                                                 processes=True, host="127.0.0.1", dashboard_address=None,
                                                 silence_logs=50, env={"TVM_NUM_THREADS": str(host_threads())},
                                                 scheduler_kwargs={"allowed_failures": self.allowed_failures})
                self.client = Client(self._cluster, set_as_default=False)
            else:
                self.client = Client(self.spec.address, timeout=self.connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            self.close()
            raise ExecutorError(f"executor {self.url}: cannot reach the Dask scheduler "
                                f"({type(exc).__name__}: {exc}); is `dask scheduler` running there?") from exc

    def close(self) -> None:
        for _, _, future in self._shared.values():
            try:
                future.release()
            except Exception:  # noqa: BLE001
                pass
        self._shared.clear()
        client, cluster, self.client, self._cluster = self.client, self._cluster, None, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001  (closing a client whose scheduler died)
                pass
        if cluster is not None:
            cluster.close()

    def describe(self) -> str:
        if self.client is None:
            return self.url
        n = len(self.client.scheduler_info(n_workers=-1).get("workers", {}))
        return f"{self.url} ({n} worker{'s' if n != 1 else ''} at {self.client.scheduler.address})"

    @property
    def n_shared(self) -> int:
        """Heavy objects shipped once to the workers so far."""
        return len(self._shared)

    # -- work -----------------------------------------------------------------------------------------
    def submit(self, evaluate: Callable[[Any], Any], genome: Any) -> Pending:
        self.start()
        used: dict[str, Any] = {}

        def share(obj: Any) -> str | None:
            if not _heavy(obj):
                return None
            entry = self._shared.get(id(obj))
            if entry is None:
                key = f"nacos-shared-{type(obj).__name__}-{uuid.uuid4().hex}"
                future = self.client.scatter(obj, broadcast=True, hash=False)
                entry = self._shared[id(obj)] = (obj, key, future)   # obj kept: its id stays unique
            used[entry[1]] = entry[2]
            return entry[1]

        buffer = io.BytesIO()
        try:
            _sharing_pickler(buffer, share).dump(evaluate)
        except Exception as exc:  # noqa: BLE001  (pickling errors come in many types)
            raise ExecutorError(f"executor {self.url}: the evaluator cannot be sent to the workers "
                                f"({type(exc).__name__}: {exc}); use the local executor") from exc
        keys = tuple(used)
        key = f"nacos-eval-{getattr(genome, 'id', 'genome')}-{uuid.uuid4().hex[:8]}"
        future = self.client.submit(_remote_evaluate, buffer.getvalue(), genome, keys, *used.values(),
                                    pure=False, key=key)
        return _DaskPending(future, time.time())
