"""Co-search against compiler-agnostic HW-NAS on the MBConv space: baseline vs two-stage vs one-stage,
same wall clock, on a pretuned database, judged on the latency each pick is deployed with (issue 13,
points 1 and 4).

Same space, supernet, seeds, strategy (NSGA-II on accuracy and latency) and wall clock per run; each run
is one `nacos` search, and the modes differ in the latency the search sees:

* baseline: what a compiler-agnostic hardware-aware NAS measures, ``baseline_latency`` (default
  ``onnxruntime``; ``default-schedule``: TVM under one fixed schedule; ``macs``: a count, no timing);
* two-stage: the candidate compiled with the shared tuning database (seeded from ``--pretuned``: after
  pretuning a candidate costs a compile and a measurement; what is still missing is tuned, on its clock);
* one-stage: the genome's own per-layer schedule genes (a gene may name one of the database's records).

Judging (point 1). Each run presents its Pareto front by the latency it searched with, then its most
accurate other candidates, ``--judge`` in all. Each presented candidate is judged on its *deployed*
latency: the better of onnxruntime and the same architecture compiled with the tuned database (what a
careful user ships), so the comparison asks only whether the search found better architectures, not
which runtime is faster. A two-stage row measured both during its search; the other modes' candidates
are compiled with the database and timed afterwards (`nacos.backends.tvm_tuned.TunedLatency`, onnxruntime
beside it in a process of its own), once per architecture.

Figures: the hypervolume of each run's judged (accuracy, deployed latency) points, one reference point
for all (the lowest accuracy and the highest deployed latency judged, a hair beyond); the ratio of each
co-search mode over the baseline (mean over seeds, with a 95 % paired bootstrap interval over the seeds);
per latency budget (the 25th / 50th / 75th percentile of every judged deployed latency) each run's pick
(its most accurate presented candidate within the budget by its own latency; for MACs the same
percentile of MACs), judged deployed; and ``overlooked``: baseline candidates over a budget by the
baseline's latency whose deployed latency meets it and that are more accurate than the baseline's pick.

Runs are resumable (rerun the same command): each run directory resumes its search with the wall clock it
has left, and each judgement is saved to the JSON as it is made. Beside the JSON: the figure (.png) and
the summary table (.md).

    python -m benchmarks.cosearch_vs_baseline            # 5 seeds x 3 modes x 120 s, pretuned database
    python -m benchmarks.cosearch_vs_baseline --quick    # 1 seed, 20 s per run, empty database: minutes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks.common import RESULTS_DIR, ResultFile, Size, add_sizes, ratio_ci, resolve_sizes

MODES = ("baseline", "two-stage", "one-stage")
PERCENTILES = (25, 50, 75)
PRETUNED = Path(__file__).resolve().parent / "pretuned" / "default-space-llvm"
#: MetaSchedule's JSON database files: what seeding a work directory's database copies
DATABASE_FILES = ("database_workload.json", "database_tuning_record.json")

#: the options whose default differs between --quick and a full run (`benchmarks.common.add_sizes`)
SIZES = {
    "seeds": Size(quick=1, full=5, help="seeds per mode"),
    "time_per_run": Size(quick=20.0, full=120.0, help="wall-clock seconds per search", type=float),
    "trials_per_workload": Size(quick=2, full=4, help="explicit schedule configs per workload the database lacks"),
    "judge": Size(quick=2, full=8, help="candidates of each run judged on deployed latency (its front first)"),
    "bootstrap": Size(quick=200, full=5000, help="bootstrap resamples of the seeds for the 95 % interval"),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cosearch_vs_baseline", description=__doc__.split("\n\n")[0])
    add_sizes(p, SIZES, "1 seed, 20 s per run, an empty database, tiny tuning: a few minutes")
    p.add_argument("--baseline-latency", default="onnxruntime", choices=("onnxruntime", "default-schedule", "macs"),
                   help="what the baseline searches with (default onnxruntime: what a compiler-agnostic "
                        "hardware-aware NAS measures)")
    p.add_argument("--table-margin", type=float, default=None,
                   help="two-stage: tuning.table_margin (default: the config's, 0); negative builds only the "
                        "candidates the latency table puts clearly on the front")
    p.add_argument("--two-stage-latency", default="tvm", choices=("tvm", "deployed"),
                   help="what two-stage searches with (tuning.search_latency): tvm (the tuned build's own "
                        "latency) or deployed (the better of the tuned build and onnxruntime, the latency every "
                        "mode is judged on; a candidate onnxruntime runs faster than the latency table's "
                        "prediction is not built)")
    p.add_argument("--pretuned", default=None,
                   help="tuning database the work directory's database is seeded from once (its JSON files "
                        "copied; the committed one stays as it is): a directory, or 'none' for an empty "
                        f"database (default {PRETUNED.relative_to(PRETUNED.parents[2])}; quick: none)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="run directories and the shared tuning database (default .nacos-cache/cosearch_vs_baseline, "
                        "with -quick appended for --quick)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "cosearch_vs_baseline.json",
                   help="results JSON, with the PNG and the markdown table beside it (default "
                        "benchmarks/results/cosearch_vs_baseline.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = resolve_sizes(p.parse_args(argv), SIZES)
    args.work_dir = args.work_dir or Path(".nacos-cache/cosearch_vs_baseline" + ("-quick" if args.quick else ""))
    if args.pretuned is None:
        args.pretuned = "none" if args.quick else str(PRETUNED)
    if args.pretuned != "none" and not all((Path(args.pretuned) / f).is_file() for f in DATABASE_FILES):
        p.error(f"--pretuned {args.pretuned}: not a tuning database (no {' / '.join(DATABASE_FILES)})")
    if args.seeds < 1 or args.time_per_run <= 0 or args.trials_per_workload < 1 or args.judge < 1 \
            or args.bootstrap < 1:
        p.error("--seeds >= 1, --time-per-run > 0, --trials-per-workload >= 1, --judge >= 1 and "
                "--bootstrap >= 1 are required")
    return args


def seed_database(args: argparse.Namespace) -> Path:
    """The work directory's tuning database, seeded from ``--pretuned`` the first time (copied whole, so
    the searches' appends never touch the committed files)."""
    from schedules.database import seed_database as seed

    db = args.work_dir / "tuning-db"
    if args.pretuned != "none":
        seed(args.pretuned, db)
    return db


def run_config(args: argparse.Namespace, mode: str, seed: int, time_left: float):
    from nacos.config import config_from_dict

    return config_from_dict({
        "mode": mode, "seed": seed, "trials": 100_000, "time_limit_s": max(time_left, 1e-3),
        **({"baseline_latency": args.baseline_latency} if mode == "baseline" else {}),
        "strategy": {"name": "nsga2", "population": 8},
        "tuning": {"database": str(args.work_dir / "tuning-db"), "trials_per_workload": args.trials_per_workload,
                   "searcher": "explicit", "warmup": 2 if args.quick else 5, "repeats": 10 if args.quick else 30,
                   **({"table_margin": args.table_margin}
                      if mode == "two-stage" and getattr(args, "table_margin", None) is not None else {}),
                   **({"search_latency": args.two_stage_latency}
                      if mode == "two-stage" and getattr(args, "two_stage_latency", None) else {})},
    })


def _rows(run_dir: Path) -> list[Any]:
    from nacos.results.store import RunDir

    run = RunDir.existing(run_dir)
    store = run.open_store(readonly=True)
    try:
        return store.completed()
    finally:
        store.close()


def spent_seconds(run_dir: Path) -> float:
    """Search wall clock already spent by a run directory: the seconds of its committed rows."""
    if not (run_dir / "results.sqlite").exists():
        return 0.0
    return float(sum(r.seconds for r in _rows(run_dir)))


ROW_METRICS = ("arch_id", "accuracy", "latency_ms", "macs", "screened", "latency_source", "latency_onnxruntime_ms",
               "latency_median_ms")


def run_one(args: argparse.Namespace, mode: str, seed: int) -> dict[str, Any]:
    """Run (or resume) one search with the wall clock it has left; return its rows as plain dicts."""
    from nacos.search.run import run_search

    run_dir = args.work_dir / f"{mode}-seed{seed}"
    left = args.time_per_run - spent_seconds(run_dir)
    # a run within a second of its clock is complete (the search stops between candidates, not inside one)
    if left > 1.0 or not (run_dir / "results.sqlite").exists():
        run_search(run_config(args, mode, seed, left), run_dir, progress=not args.quiet)
    rows = [{"id": r.id, "status": r.status, "reason": r.reason, "seconds": r.seconds,
             **{k: r.metrics.get(k) for k in ROW_METRICS}} for r in _rows(run_dir)]
    return {"run_dir": str(run_dir), "rows": rows, "search_seconds": float(sum(r["seconds"] for r in rows))}


def _ok(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["status"] == "ok" and r["latency_ms"] is not None and r["accuracy"] is not None]


def presented(rows: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """What a run hands its user: its Pareto front by the latency it searched with (most accurate first),
    then its most accurate other candidates, `k` distinct architectures in all."""
    from nacos.results.pareto import pareto_front

    ok = _ok(rows)
    if not ok:
        return []
    front = [ok[i] for i in pareto_front([[r["accuracy"], r["latency_ms"]] for r in ok], ["max", "min"])]
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for r in sorted(front, key=lambda r: -r["accuracy"]) + sorted(ok, key=lambda r: -r["accuracy"]):
        if r["arch_id"] not in seen:
            seen.add(r["arch_id"])
            out.append(r)
    return out[:k]


def deployed_from_row(row: dict[str, Any]) -> dict[str, Any] | None:
    """A built two-stage row holds its deployed latency already: tuned TVM and onnxruntime timed side by side
    (a row the latency table priced was not built: None, it is judged by a build)."""
    ort, tuned = row.get("latency_onnxruntime_ms"), row.get("latency_median_ms", row["latency_ms"])
    if row.get("latency_source") is not None or not isinstance(ort, (int, float)) \
            or not isinstance(tuned, (int, float)):
        return None
    return {"ok": True, "tuned_ms": tuned, "onnxruntime_ms": ort, "deployed_ms": min(tuned, ort),
            "source": "search row"}


def judge(args: argparse.Namespace, seed: int, mode: str, run: dict[str, Any], judged: dict[str, Any],
          save) -> None:
    """Deployed latency of the run's presented candidates, each architecture once (`judged` by arch id)."""
    backend = None
    for row in presented(run["rows"], args.judge):
        arch_id = row["arch_id"]
        if arch_id in judged:
            continue
        from_row = deployed_from_row(row) if mode == "two-stage" else None
        if from_row is not None:
            judged[arch_id] = from_row
        else:
            if backend is None:
                import dataclasses

                from nacos.backends.tvm_tuned import TunedLatency

                cfg = run_config(args, "two-stage", seed, 1.0)   # the build's own latency beside onnxruntime's
                backend = TunedLatency(dataclasses.replace(
                    cfg, tuning=dataclasses.replace(cfg.tuning, search_latency="tvm")))
            judged[arch_id] = remeasure(backend, Path(run["run_dir"]) / "artifacts" / arch_id / "model.onnx")
        save()


def remeasure(backend: Any, onnx_path: Path) -> dict[str, Any]:
    """The architecture compiled with the tuned database (what it lacks tuned first) and onnxruntime beside it."""
    try:
        res = backend.latency(None, None, onnx_path)
    except Exception as exc:  # noqa: BLE001 - a failed judgement is a figure, not the end of the run
        return {"ok": False, "reason": f"{type(exc).__name__}: {exc}"[:300]}
    ort = res.details.get("onnxruntime_ms")
    if not res.ok or not isinstance(ort, (int, float)):
        reason = res.reason or res.details.get("onnxruntime_error") or "no onnxruntime time"
        return {"ok": False, "reason": reason[:300], **({"tuned_ms": res.ms} if res.ok else {})}
    return {"ok": True, "tuned_ms": res.ms, "onnxruntime_ms": ort, "deployed_ms": min(res.ms, ort),
            "source": "remeasured"}


def summarize(args: argparse.Namespace, runs: dict[str, Any], judged: dict[str, Any]) -> dict[str, Any]:
    """Per run: judged points, hypervolume on deployed latency, picks under the budgets; per mode: means;
    the ratios over the baseline with their intervals; the overlooked architectures."""
    from nacos.results.pareto import hypervolume

    points = {key: [(r, judged[r["arch_id"]]) for r in presented(run["rows"], args.judge)
                    if judged.get(r["arch_id"], {}).get("ok")] for key, run in runs.items()}
    pool = [(r, j) for pts in points.values() for r, j in pts]
    if not pool:
        return {"per_run": {}, "aggregate": {}, "budgets_ms": {}, "reference_point": None}
    deployed = np.array([j["deployed_ms"] for _, j in pool])
    reference = (min(r["accuracy"] for r, _ in pool) - 1e-6, float(deployed.max()) * 1.000001)
    budgets = {str(p): float(np.percentile(deployed, p)) for p in PERCENTILES}
    macs_limits = {str(p): float(np.percentile([r["macs"] for r, _ in pool if r.get("macs")] or [0.0], p))
                   for p in PERCENTILES}
    per_run: dict[str, Any] = {}
    for key, run in runs.items():
        mode = key.rsplit("-seed", 1)[0]
        own_is_macs = mode == "baseline" and args.baseline_latency == "macs"
        pts = points[key]
        entry: dict[str, Any] = {
            "candidates": len(run["rows"]), "ok": len(_ok(run["rows"])), "search_seconds": run["search_seconds"],
            "judged": len(pts),
            "hypervolume_deployed": hypervolume([[r["accuracy"], j["deployed_ms"]] for r, j in pts], ["max", "min"],
                                                reference) if pts else 0.0,
            "points": [{"arch_id": r["arch_id"], "accuracy": r["accuracy"], "own_latency": r["latency_ms"], **j}
                       for r, j in pts],
            "budgets": {},
        }
        for p, b in budgets.items():
            limit = macs_limits[p] if own_is_macs else b
            own = [(r, j) for r, j in pts if (r.get("macs") if own_is_macs else r["latency_ms"]) <= limit]
            pick = max(own, key=lambda rj: (rj[0]["accuracy"], -rj[1]["deployed_ms"])) if own else None
            e: dict[str, Any] = {"budget_ms": b, "pick": pick[0]["arch_id"] if pick else None,
                                 "accuracy": pick[0]["accuracy"] if pick else None,
                                 "deployed_ms": pick[1]["deployed_ms"] if pick else None,
                                 "violates": bool(pick and pick[1]["deployed_ms"] > b)}
            if mode == "baseline":
                floor = pick[0]["accuracy"] if pick else -1.0
                e["overlooked"] = [r["arch_id"] for r, j in pts
                                   if (r.get("macs") if own_is_macs else r["latency_ms"]) > limit
                                   and j["tuned_ms"] <= b and r["accuracy"] > floor]
            entry["budgets"][p] = e
        per_run[key] = entry
    seeds = sorted({k.rsplit("-seed", 1)[1] for k in per_run}, key=int)
    aggregate: dict[str, Any] = {}
    for mode in MODES:
        entries = [per_run[f"{mode}-seed{s}"] for s in seeds if f"{mode}-seed{s}" in per_run]
        if not entries:
            continue
        hv = [e["hypervolume_deployed"] for e in entries]
        agg: dict[str, Any] = {"seeds": len(entries), "hypervolume_mean": float(np.mean(hv)),
                               "hypervolume_std": float(np.std(hv)),
                               "candidates_mean": float(np.mean([e["candidates"] for e in entries]))}
        for p in budgets:
            accs = [e["budgets"][p]["accuracy"] for e in entries if not e["budgets"][p]["violates"]]
            got = [a for a in accs if a is not None]
            agg[f"best_accuracy_p{p}"] = {"mean": float(np.mean(got)) if got else None, "met_in_seeds": len(got),
                                          "violations": sum(e["budgets"][p]["violates"] for e in entries)}
        aggregate[mode] = agg
    overlooked = sum(len(e["budgets"][p]["overlooked"]) for k, e in per_run.items() if k.startswith("baseline-")
                     for p in budgets)
    return {"reference_point": {"accuracy": reference[0], "deployed_ms": reference[1]}, "budgets_ms": budgets,
            "macs_limits": macs_limits, "per_run": per_run, "aggregate": aggregate, "overlooked": int(overlooked),
            **hypervolume_ratios(per_run, args.bootstrap)}


def hypervolume_ratios(per_run: dict[str, Any], resamples: int) -> dict[str, Any]:
    """Each co-search mode's hypervolume over the baseline's on the seeds where both ran (same seed, same
    wall clock): ``hypervolume_ratio_<mode>_over_baseline`` (mean over mean, None while no seed has both),
    its 95 % paired bootstrap interval and the per-seed ratios."""
    out: dict[str, Any] = {}
    for mode in MODES[1:]:
        name = f"hypervolume_ratio_{mode.replace('-', '_')}_over_baseline"
        pairs = {}
        for key, entry in per_run.items():
            m, seed = key.rsplit("-seed", 1)
            base = per_run.get(f"baseline-seed{seed}")
            if m == mode and base is not None and base["hypervolume_deployed"] > 0:
                pairs[seed] = (entry["hypervolume_deployed"], base["hypervolume_deployed"])
        if pairs:
            value, ci = ratio_ci([a for a, _ in pairs.values()], [b for _, b in pairs.values()], resamples)
        else:
            value, ci = None, None
        out[name], out[name + "_ci95"] = value, ci
        out[name + "_per_seed"] = {s: a / b for s, (a, b) in pairs.items()}
    return out


def plot(summary: dict[str, Any]) -> Any:
    """Each run's judged points on deployed latency (its front as a step line) and the budgets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nacos.results.pareto import pareto_front

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {"baseline": "tab:gray", "two-stage": "tab:blue", "one-stage": "tab:orange"}
    for key, entry in summary["per_run"].items():
        mode = key.rsplit("-seed", 1)[0]
        pts = [(p["deployed_ms"], p["accuracy"]) for p in entry["points"]]
        if not pts:
            continue
        front = sorted(pts[i] for i in pareto_front([[a, ms] for ms, a in pts], ["max", "min"]))
        xs, ys = zip(*front)
        ax.step(xs, ys, where="post", color=colors[mode], alpha=0.8, marker="o", ms=3,
                label=mode if not any(line.get_label() == mode for line in ax.lines) else None)
    for b in summary["budgets_ms"].values():
        ax.axvline(b, color="k", ls=":", lw=1)
    ax.set_xlabel("deployed latency (ms): the better of onnxruntime and the tuned database")
    ax.set_ylabel("accuracy (inherited weights)")
    ax.set_title("judged fronts, one line per seed; budgets at the 25/50/75th percentile")
    ax.legend()
    fig.tight_layout()
    return fig


def verdict(summary: dict[str, Any], seeds: int) -> str:
    r, ci = summary.get("hypervolume_ratio_two_stage_over_baseline"), \
        summary.get("hypervolume_ratio_two_stage_over_baseline_ci95")
    if r is None:
        return "no seed has both a baseline and a two-stage run with judged candidates"
    holds = ci is not None and ci[0] > 1
    return (f"two-stage / baseline hypervolume on deployed latency {r:.3f} (95 % CI {ci[0]:.3f} to {ci[1]:.3f}, "
            f"{seeds} seeds): " + ("the interval lies above 1, the co-search finds better architectures" if holds
                                   else "the interval does not lie above 1"))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # the searches resume from their run directories; the file keeps the judgements (per architecture, so a
    # larger --seeds extends a run: the seed count is not a setting). The work directory is one: its
    # database is what every architecture was judged with, so another one starts the judgements afresh
    # (a judgement carried over from a run on a less covered database was reused here once)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "quiet", "seeds")}
    settings["work_dir"] = str(args.work_dir)
    result = ResultFile("cosearch_vs_baseline", args.out, settings)
    payload = result.payload
    judged: dict[str, Any] = payload.setdefault("judged", {})
    payload.update({"work_dir": str(args.work_dir), "complete": False, "baseline_latency": args.baseline_latency})
    seed_database(args)
    runs: dict[str, Any] = {}
    judged_runs: set[str] = set()

    def save() -> None:
        # figures over the seeds whose three runs are searched and judged (a seed in flight waits)
        done = {k: v for k, v in runs.items()
                if all(f"{m}-seed{k.rsplit('-seed', 1)[1]}" in judged_runs for m in MODES)}
        summary = summarize(args, done, judged) if done else {}
        # the checked interface at the top level
        for key in ("hypervolume_ratio_two_stage_over_baseline", "hypervolume_ratio_one_stage_over_baseline"):
            payload[key] = summary.get(key)
        payload["hypervolume_ratio_ci95"] = summary.get("hypervolume_ratio_two_stage_over_baseline_ci95")
        payload["overlooked"] = summary.get("overlooked")
        payload["seeds"] = len({k.rsplit("-seed", 1)[1] for k in done})
        payload["seeds_asked"] = args.seeds
        payload["summary"] = summary
        result.save()

    for seed in range(args.seeds):
        for mode in MODES:
            key = f"{mode}-seed{seed}"
            print(f"[cosearch_vs_baseline] {key}: {args.time_per_run:g} s of search", file=sys.stderr)
            runs[key] = run_one(args, mode, seed)
            save()
            print(f"[cosearch_vs_baseline] {key}: judging up to {args.judge} candidates on deployed latency",
                  file=sys.stderr)
            judge(args, seed, mode, runs[key], judged, save)
            judged_runs.add(key)
            save()
    payload["complete"] = True
    save()
    summary = payload["summary"]
    payload["verdict"] = verdict(summary, payload["seeds"])
    result.save()
    result.figure(plot(summary))
    header, rows = table_rows(summary)
    print(result.table(header, rows, digits=4))
    print(f"overlooked by the baseline: {summary['overlooked']}\n{payload['verdict']}")
    return 0


def table_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The per-mode markdown table: seeds, mean candidates, hypervolume on deployed latency (mean, std), and
    per budget the mean accuracy of the picks within it."""
    header = ["mode", "seeds", "candidates", "HV (deployed) mean", "HV std",
              *[f"best acc @p{p} ({summary['budgets_ms'][str(p)]:.3f} ms)" for p in PERCENTILES]]
    rows = [[mode, a["seeds"], a["candidates_mean"], a["hypervolume_mean"], a["hypervolume_std"],
             *[a[f"best_accuracy_p{p}"]["mean"] for p in PERCENTILES]] for mode, a in summary["aggregate"].items()]
    return header, rows


if __name__ == "__main__":
    sys.exit(main())
