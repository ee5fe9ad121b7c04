"""Search throughput (evaluated candidates per minute) against the number of local workers.

The same search, run again on each executor: same seed, same space and supernet, the same fixed number
of candidates, a real TVM latency mode. The strategy is random search, whose proposals do not depend on
the results told back, so every executor and window evaluates exactly the same candidates (checked:
`same_candidates` in the JSON) and only the way they are spread differs:

* ``local``: every candidate in the benchmark's own process, one at a time (``parallel`` 1);
* ``dask://local:N`` with ``parallel`` N, for each N of ``--workers``: a `distributed.LocalCluster` of N
  worker processes (one thread each) started with the search and shut down at its end.

Modes: ``baseline`` (one fixed default schedule per layer, built and measured per candidate: nothing
shared between candidates) and, with ``--modes baseline two-stage``, ``two-stage`` (explicit tuner,
each run with its own fresh tuning database; the workers share it under its file lock, so their
tunings take turns). The cost-model screening of two-stage is off, so that every candidate is tuned.

Figures per run: wall seconds of the whole search call (cluster start, evaluations, shutdown, report),
the span from the first proposal to the last commit, candidates per minute over both, speed-up over
``dask://local:1`` and over ``local``, the mean evaluation seconds of one candidate (longer when workers
share cores), and the median of the measured latencies (workers measuring at once disturb each
other's timings on shared cores).

    python -m benchmarks.throughput_workers            # full size: workers 1 2 4, baseline + two-stage, 16 candidates
    python -m benchmarks.throughput_workers --quick    # workers 1 2, baseline, 4 candidates

Results go to benchmarks/results/throughput_workers.json (+ .png), rewritten after every run; a rerun
of the same command resumes (finished runs are kept, an unfinished one is started again from scratch,
since a resumed search would not time as one).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks.common import RESULTS_DIR, ResultFile, Size, add_sizes, resolve_sizes, save_figure

MODES = ("baseline", "two-stage")
SIZES = {"candidates": Size(quick=4, full=16, help="candidates per run"),
         "warmup": Size(quick=1, full=2, help="untimed runs per measurement"),
         "repeats": Size(quick=3, full=10, help="timed runs per measurement"),
         "trials_per_workload": Size(quick=2, full=4, help="two-stage: explicit schedule configs per unseen workload")}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput_workers", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_sizes(p, SIZES, "workers 1 2, baseline only, 4 candidates: a few minutes")
    p.add_argument("--workers", type=int, nargs="+", default=None,
                   help="local Dask worker counts N, each run with --parallel N (default 1 2 4; quick 1 2)")
    p.add_argument("--modes", nargs="+", choices=MODES, default=None,
                   help="search modes (default baseline two-stage; quick baseline)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0,
                   help="TVM threads per candidate (0: every core, the nacos default)")
    p.add_argument("--checkpoint", default="default", help="supernet checkpoint (default: the packaged one)")
    p.add_argument("--data", default="mnist5k", help="data set of the checkpoint")
    p.add_argument("--space", type=Path, default=None, help="JSON file of SpaceConfig overrides (default: none)")
    p.add_argument("--no-local", action="store_true", help="skip the local executor run")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="run directories and tuning databases (default .nacos-cache/throughput_workers, "
                        "with -quick appended for --quick)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "throughput_workers.json", help="results JSON")
    p.add_argument("--png", type=Path, default=None, help="figure (default: --out with .png)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = resolve_sizes(p.parse_args(argv), SIZES)
    q = args.quick
    args.workers = sorted(set(args.workers or ([1, 2] if q else [1, 2, 4])))
    args.modes = list(dict.fromkeys(args.modes or (["baseline"] if q else list(MODES))))
    args.work_dir = args.work_dir or Path(".nacos-cache/throughput_workers" + ("-quick" if q else ""))
    args.png = args.png or args.out.with_suffix(".png")
    if min(args.workers) < 1 or args.candidates < 1 or args.threads < 0:
        p.error("--workers >= 1, --candidates >= 1 and --threads >= 0 are required")
    args.space_overrides = json.loads(args.space.read_text()) if args.space else {}
    return args


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"modes": args.modes, "workers": args.workers, "local": not args.no_local, "candidates": args.candidates,
            "seed": args.seed, "strategy": "random", "warmup": args.warmup, "repeats": args.repeats,
            "trials_per_workload": args.trials_per_workload, "searcher": "explicit", "screening": False,
            "threads": args.threads, "checkpoint": args.checkpoint, "data": args.data, "space": args.space_overrides}


def executors(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    """(label, executor URL, parallel) of every run of one mode, in the order they are run."""
    out = [] if args.no_local else [("local", "local", 1)]
    return out + [(f"dask-{n}", f"dask://local:{n}", n) for n in args.workers]


def run_config(args: argparse.Namespace, mode: str, executor: str, parallel: int, database: Path):
    from nacos.config import config_from_dict

    return config_from_dict({
        "mode": mode, "seed": args.seed, "trials": args.candidates, "executor": executor, "parallel": parallel,
        "checkpoint": args.checkpoint, "data": args.data, "space": args.space_overrides,
        "strategy": {"name": "random"},
        "tuning": {"database": str(database), "trials_per_workload": args.trials_per_workload, "searcher": "explicit",
                   "screening": False, "warmup": args.warmup, "repeats": args.repeats, "threads": args.threads},
    })


def _rows(run_dir: Path) -> list[Any]:
    from nacos.results.store import RunDir

    store = RunDir.existing(run_dir).open_store(readonly=True)
    try:
        return sorted(store.completed(), key=lambda r: r.seq)
    finally:
        store.close()


def run_one(args: argparse.Namespace, mode: str, label: str, executor: str, parallel: int) -> dict[str, Any]:
    """One search from scratch on `executor`, timed; its rows summarised."""
    from nacos.search.run import run_search

    run_dir = args.work_dir / f"{mode}-{label}"
    database = args.work_dir / f"{mode}-{label}-db"
    for d in (run_dir, database):  # a half-finished run would not time as one: start it again
        if d.exists():
            shutil.rmtree(d)
    cfg = run_config(args, mode, executor, parallel, database)
    t0 = time.monotonic()
    summary = run_search(cfg, run_dir, progress=not args.quiet)
    wall = time.monotonic() - t0
    rows = _rows(run_dir)
    span = max(r.finished_at for r in rows) - min(r.created_at for r in rows) if rows else 0.0
    latencies = [r.metrics["latency_ms"] for r in rows if r.status == "ok" and r.metrics.get("latency_ms")]
    return {
        "executor": executor, "parallel": parallel, "workers": parallel if executor != "local" else 1,
        "run_dir": str(run_dir), "candidates": len(rows),
        "ok": sum(r.status == "ok" for r in rows), "failed": sum(r.status == "failed" for r in rows),
        "rejected": sum(r.status == "rejected" for r in rows),
        "reasons": sorted({r.reason for r in rows if r.reason})[:5],
        "wall_s": wall, "loop_s": summary["seconds"], "span_s": span,
        "candidates_per_min": 60.0 * len(rows) / wall if wall > 0 else None,
        "candidates_per_min_span": 60.0 * len(rows) / span if span > 0 else None,
        "eval_s_mean": statistics.fmean(r.seconds for r in rows) if rows else None,
        "eval_s_sum": float(sum(r.seconds for r in rows)),
        "latency_ms_median": statistics.median(latencies) if latencies else None,
        "genome_ids": [r.id for r in rows],
        "evaluated_on": summary.get("executor"),
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def summarize(args: argparse.Namespace, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per mode, one line per executor: throughput and speed-ups over dask-1 and over local."""
    out: dict[str, Any] = {}
    for mode in args.modes:
        mine = {label: runs.get(f"{mode}/{label}") for label, _, _ in executors(args)}
        base = mine.get("dask-1") or next((r for k, r in mine.items() if k.startswith("dask-") and r), None)
        local = mine.get("local")
        lines = []
        for label, executor, parallel in executors(args):
            r = mine.get(label)
            if r is None:
                continue
            def ratio(ref, key):
                return (r[key] / ref[key]) if ref and ref.get(key) and r.get(key) else None
            lines.append({"label": label, "executor": executor, "workers": r["workers"], "parallel": parallel,
                          "candidates": r["candidates"], "ok": r["ok"], "wall_s": r["wall_s"], "span_s": r["span_s"],
                          "candidates_per_min": r["candidates_per_min"],
                          "candidates_per_min_span": r["candidates_per_min_span"],
                          "speedup_vs_dask1": ratio(base, "candidates_per_min"),
                          "speedup_vs_dask1_span": ratio(base, "candidates_per_min_span"),
                          "speedup_vs_local": ratio(local, "candidates_per_min"),
                          "eval_s_mean": r["eval_s_mean"], "latency_ms_median": r["latency_ms_median"]})
        ids = [tuple(r["genome_ids"]) for r in mine.values() if r]
        out[mode] = {"runs": lines, "same_candidates": len(set(ids)) <= 1 if ids else None}
    return out


def plot(args: argparse.Namespace, summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colors = {"baseline": "tab:gray", "two-stage": "tab:blue"}
    for mode, entry in summary.items():
        dask = [run for run in entry["runs"] if run["label"].startswith("dask-") and run["candidates_per_min"]]
        if dask:
            xs = [run["workers"] for run in dask]
            ax.plot(xs, [run["candidates_per_min"] for run in dask], "o-", color=colors[mode],
                    label=f"{mode}, dask://local:N")
            first = dask[0]
            ax.plot(xs, [first["candidates_per_min"] * n / first["workers"] for n in xs], ":", color=colors[mode],
                    lw=1, label=f"{mode}, linear from N={first['workers']}")
        local = next((run for run in entry["runs"] if run["label"] == "local" and run["candidates_per_min"]), None)
        if local:
            ax.plot([1], [local["candidates_per_min"]], "s", color=colors[mode], mfc="none", ms=9,
                    label=f"{mode}, local executor")
    ax.set_xlabel("local workers N (parallel N)")
    ax.set_ylabel("evaluated candidates per minute (wall)")
    ax.set_xticks(args.workers)
    cores = os.cpu_count()
    ax.set_title(f"throughput vs workers ({args.candidates} candidates per run, {cores} cores)", fontsize=10)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def _table(result: ResultFile, summary: dict[str, Any]) -> str:
    """The runs as a markdown table beside the JSON (returned too), and whether every executor of a mode
    evaluated the same candidates."""
    rows = [[mode, run["executor"], run["candidates"], run["ok"], run["wall_s"], run["candidates_per_min"],
             run["speedup_vs_dask1"], run["speedup_vs_local"], run["eval_s_mean"], run["latency_ms_median"]]
            for mode, entry in summary.items() for run in entry["runs"]]
    text = result.table(["mode", "executor", "candidates", "ok", "wall s", "candidates / min", "x dask-1",
                         "x local", "eval s", "latency ms"], rows, digits=2)
    return text + "".join(f"\n{mode}: same candidates on every executor: {entry['same_candidates']}"
                          for mode, entry in summary.items())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from schedules.targets import versions

    args.work_dir.mkdir(parents=True, exist_ok=True)
    current = settings(args)
    result = ResultFile("throughput_workers", args.out, current)
    if result.resumed and result.payload.get("work_dir") != str(args.work_dir):  # its runs are elsewhere
        result = ResultFile("throughput_workers", args.out, current, resume=False)
    runs: dict[str, dict[str, Any]] = result.payload.setdefault("runs", {})
    payload = result.payload
    payload.update({
        "work_dir": str(args.work_dir), "versions": dict(versions()),
        "cores": os.cpu_count(),
        "note": ("dask://local:N starts N worker processes of one thread each, so N above the core count "
                 "oversubscribes the CPU. Dask's nanny sets OMP_NUM_THREADS=1 in its workers, which caps TVM's "
                 "thread pool at 1 thread there (the local executor uses --threads, 0: all cores): latencies "
                 "measured on dask and local differ for that reason too. wall_s includes starting the cluster "
                 "(each worker imports torch and TVM on its first candidate); span_s runs from the first "
                 "proposal to the last commit."),
        "complete": False,
    })

    def save() -> None:
        payload["summary"] = summarize(args, runs)
        result.save()
        plot(args, payload["summary"], args.png)

    for mode in args.modes:
        for label, executor, parallel in executors(args):
            key = f"{mode}/{label}"
            if key in runs:
                continue
            print(f"[throughput_workers] {key}: {args.candidates} candidates on {executor}, parallel {parallel}",
                  file=sys.stderr, flush=True)
            runs[key] = run_one(args, mode, label, executor, parallel)
            save()
            r = runs[key]
            print(f"[throughput_workers] {key}: {r['candidates']} candidates ({r['ok']} ok) in {r['wall_s']:.1f} s: "
                  f"{r['candidates_per_min']:.2f} per minute", file=sys.stderr, flush=True)
    payload["complete"] = True
    save()
    print(_table(result, payload["summary"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
