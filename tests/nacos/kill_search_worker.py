"""A real two-stage search (export, explicit tuning into a shared database, TVM measurement, results
commit), run in a subprocess by test_kill_real_search.py and killed there with SIGKILL.

    NACOS_KILL_AT=PHASE:WHEN:N python tests/nacos/kill_search_worker.py CONFIG RUN_DIR TRACE

Every phase start is appended to TRACE (one unbuffered write each, so a kill loses none). The kill is a
named point, not a timer: with ``NACOS_KILL_AT=PHASE:WHEN:N`` the process sends itself SIGKILL at the
N-th call of PHASE (export, tune, measure or commit) in this process, ``before`` the call, ``after`` it
returned (its result not yet used), or, for tune, ``during`` it: once the tuning worker it started holds
the tuning database's lock (it is tuning). The line ``kill PHASE:WHEN`` goes to TRACE first.

The latency objective is made deterministic (a fixed function of the architecture's MACs; the measured
latency is kept as ``latency_measured_ms``): the real work runs and is killed, while the proposals of a
resumed run can be compared exactly with those of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> int:
    import torch

    torch.set_num_threads(1)
    import archspace.export
    import schedules.measure
    from nacos.config import config_from_dict
    from nacos.results.store import ResultsStore
    from nacos.search import loop
    from nacos.search.evaluation import Evaluation
    from nacos.search.run import _observer, build_search

    cfg_path, run_dir, trace = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    fd = os.open(trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    kill_phase, kill_when, kill_n = (os.environ.get("NACOS_KILL_AT", "") or "::0").split(":")
    calls: dict[str, int] = {}

    def die(phase: str, when: str) -> None:
        os.write(fd, f"kill {phase}:{when}\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)

    def die_once_worker_tunes(phase: str) -> None:
        """SIGKILL this process once its tuning worker holds the database's lock (it is tuning)."""
        import psutil

        me = psutil.Process()
        while True:
            for child in me.children(recursive=False):
                try:
                    if "nacos.backends.tuning_worker" in " ".join(child.cmdline()) and \
                            any(f.path.endswith("/.lock") for f in child.open_files()):
                        die(phase, "during")
                except psutil.Error:
                    pass
            time.sleep(0.005)

    def traced(phase, fn):
        def wrapper(*args, **kwargs):
            os.write(fd, f"{phase}\n".encode())
            calls[phase] = calls.get(phase, 0) + 1
            aimed = phase == kill_phase and calls[phase] == int(kill_n)
            if aimed and kill_when == "before":
                die(phase, "before")
            if aimed and kill_when == "during":
                threading.Thread(target=die_once_worker_tunes, args=(phase,), daemon=True).start()
            result = fn(*args, **kwargs)
            if aimed:  # after (also a "during" whose worker ended before it was seen holding the lock)
                die(phase, "after")
            return result
        return wrapper

    archspace.export.export_onnx = traced("export", archspace.export.export_onnx)
    import nacos.backends.tvm_tuned  # tuning runs in a worker process (nacos.backends.tuning_worker) it starts

    nacos.backends.tvm_tuned.run_tuning_worker = traced("tune", nacos.backends.tvm_tuned.run_tuning_worker)
    schedules.measure.measure = traced("measure", schedules.measure.measure)
    ResultsStore.finish = traced("commit", ResultsStore.finish)

    cfg = config_from_dict(json.loads(cfg_path.read_text()))
    run, strategy, evaluator, genome_space = build_search(cfg, run_dir)

    def evaluate(genome):
        ev = evaluator(genome)
        metrics = dict(ev.metrics)
        if ev.status == "ok":
            metrics["latency_measured_ms"] = metrics["latency_ms"]
            metrics["latency_ms"] = round(0.05 + 2e-6 * metrics["macs"], 9)
        return Evaluation(ev.status, metrics, ev.reason, ev.seconds)

    store = run.open_store()
    try:
        loop.run_search(strategy, evaluate, store, cfg.trials, progress=False,
                        on_record=_observer(evaluator, genome_space, evaluator.arch_of))
    finally:
        store.close()
    os.write(fd, b"done\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
