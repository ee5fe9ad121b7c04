"""Co-search against compiler-agnostic HW-NAS: baseline vs two-stage vs one-stage, same wall clock.

Same space, supernet, seeds and wall-clock budget per run; each run is one `nacos` search (NSGA-II on
accuracy and latency, the latency budgets reported as soft budgets so that one search serves both).
Each mode judges latency its own way during the search:

* baseline: TVM with one fixed default schedule for every layer (what a compiler-agnostic HW-NAS sees);
* two-stage: the candidate's unseen workloads tuned into the shared database, then measured;
* one-stage: the genome's own per-layer schedules.

Afterwards every baseline candidate that could matter (its default-schedule front, and the most
accurate candidates it would reject) is tuned and measured the two-stage way, so that all three
modes are compared on *tuned* latency, the latency the network will actually run with. Figures per
seed and budget: the best accuracy meeting the budget (for the baseline, the candidate it would pick
by its own latency, and that candidate's tuned latency), the hypervolume of each front (accuracy vs
tuned latency, reference point stated in the JSON), and the "overlooked" architectures: baseline
candidates over the budget by default-schedule latency whose tuned latency fits.

Runs are resumable (rerun the same command): each run directory resumes its search with the wall
clock it has left (the sum of its committed rows' seconds counts as spent), and every re-measurement
is written to the JSON as it is made (`benchmarks.common.ResultFile`: the re-measurements of a previous
file are kept when its settings equal this run's). Beside the JSON: the figure (.png) and the summary
table (.md).

    python -m benchmarks.cosearch_vs_baseline            # full size: 3 seeds x 3 modes x 360 s
    python -m benchmarks.cosearch_vs_baseline --quick    # 1 seed, 20 s per run: a few minutes
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks.common import RESULTS_DIR, ResultFile, Size, add_sizes, resolve_sizes

MODES = ("baseline", "two-stage", "one-stage")
OBJECTIVES = (("accuracy", "max"), ("latency_ms", "min"))


#: the options whose default differs between --quick and a full run (`benchmarks.common.add_sizes`)
SIZES = {
    "seeds": Size(quick=1, full=3, help="seeds per mode"),
    "time_per_run": Size(quick=20.0, full=360.0, help="wall-clock seconds per search", type=float),
    "trials_per_workload": Size(quick=2, full=4, help="explicit schedule configs per unseen workload"),
    "remeasure": Size(quick=2, full=10, help="baseline candidates re-measured with tuned schedules per run"),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cosearch_vs_baseline", description=__doc__.split("\n\n")[0])
    add_sizes(p, SIZES, "1 seed, 20 s per run, tiny tuning: a few minutes")
    p.add_argument("--budgets", type=float, nargs=2, default=(1.0, 1.5), metavar=("B1", "B2"),
                   help="two latency budgets in ms (default 1 1.5; tuned latencies of sampled architectures here "
                        "are about 0.7 to 2 ms, see benchmarks/results/inner_loop.json)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="run directories and the shared tuning database (default .nacos-cache/cosearch_vs_baseline, "
                        "with -quick appended for --quick)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "cosearch_vs_baseline.json",
                   help="results JSON, with the PNG and the markdown table beside it (default "
                        "benchmarks/results/cosearch_vs_baseline.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = resolve_sizes(p.parse_args(argv), SIZES)
    args.work_dir = args.work_dir or Path(".nacos-cache/cosearch_vs_baseline" + ("-quick" if args.quick else ""))
    if (args.seeds < 1 or args.time_per_run <= 0 or args.trials_per_workload < 1 or args.remeasure < 0
            or min(args.budgets) <= 0):
        p.error("--seeds >= 1, --time-per-run > 0, --trials-per-workload >= 1, --remeasure >= 0 and positive "
                "budgets are required")
    return args


def run_config(args: argparse.Namespace, mode: str, seed: int, time_left: float):
    from nacos.config import config_from_dict

    return config_from_dict({
        "mode": mode, "seed": seed, "trials": 100_000, "time_limit_s": max(time_left, 1e-3),
        "strategy": {"name": "nsga2", "population": 8},
        "budgets": {"latency_budgets_ms": list(args.budgets)},
        "tuning": {"database": str(args.work_dir / "tuning-db"), "trials_per_workload": args.trials_per_workload,
                   "searcher": "explicit", "warmup": 2 if args.quick else 5, "repeats": 10 if args.quick else 30},
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


def run_one(args: argparse.Namespace, mode: str, seed: int) -> dict[str, Any]:
    """Run (or resume) one search with the wall clock it has left; return its rows as plain dicts."""
    from nacos.search.run import run_search

    run_dir = args.work_dir / f"{mode}-seed{seed}"
    left = args.time_per_run - spent_seconds(run_dir)
    if left > 0 or not (run_dir / "results.sqlite").exists():
        run_search(run_config(args, mode, seed, left), run_dir, progress=not args.quiet)
    rows = [{"id": r.id, "status": r.status, "reason": r.reason, "seconds": r.seconds, "genome": r.genome,
             **{k: r.metrics.get(k) for k in ("arch_id", "accuracy", "latency_ms", "macs", "screened")}}
            for r in _rows(run_dir)]
    return {"run_dir": str(run_dir), "rows": rows, "search_seconds": float(sum(r["seconds"] for r in rows))}


def pick_for_remeasure(rows: list[dict[str, Any]], budgets: Sequence[float], k: int) -> list[str]:
    """Baseline candidates worth a tuned measurement: its default-latency front, then the most accurate
    candidates over the largest budget by default latency (the ones tuning could bring back)."""
    from nacos.results.pareto import pareto_front

    ok = [r for r in rows if r["status"] == "ok" and r["latency_ms"] is not None]
    if not ok or k == 0:
        return []
    front = [ok[i] for i in pareto_front([[r["accuracy"], r["latency_ms"]] for r in ok], ["max", "min"])]
    over = sorted((r for r in ok if r["latency_ms"] > min(budgets)), key=lambda r: -r["accuracy"])
    picked: list[str] = []
    for r in sorted(front, key=lambda r: -r["accuracy"]) + over:
        if r["arch_id"] not in picked:
            picked.append(r["arch_id"])
    return picked[:k]


def remeasure(args: argparse.Namespace, seed: int, run: dict[str, Any], arch_ids: list[str],
              done: dict[str, Any], save) -> dict[str, Any]:
    """Tuned latency (two-stage backend, shared database) of baseline candidates; `done` caches results."""
    from archspace.space import ArchSpace, SpaceConfig
    from nacos.backends.tvm_tuned import TunedLatency

    todo = [a for a in arch_ids if a not in done]
    if not todo:
        return done
    cfg = run_config(args, "two-stage", seed, 1.0)
    backend = TunedLatency(cfg)
    space = ArchSpace(SpaceConfig.from_dict(dict(cfg.space)))
    genomes = {r["arch_id"]: r["genome"] for r in run["rows"]}
    for arch_id in todo:
        arch = space.parse(genomes[arch_id])
        onnx_path = Path(run["run_dir"]) / "artifacts" / arch_id / "model.onnx"
        try:
            res = backend.latency(arch, arch, onnx_path)
            done[arch_id] = {"tuned_ms": res.ms if res.ok else None, "ok": res.ok, "reason": res.reason}
        except Exception as exc:  # noqa: BLE001 - a failed re-measurement is a figure, not the end of the run
            done[arch_id] = {"tuned_ms": None, "ok": False, "reason": f"{type(exc).__name__}: {exc}"[:300]}
        save()
    return done


def summarize(args: argparse.Namespace, runs: dict[str, Any], tuned: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per seed and mode: best accuracy under each budget, hypervolume on tuned latency, overlooked."""
    from nacos.results.pareto import hypervolume, pareto_front

    all_ms = [r["latency_ms"] for run in runs.values() for r in run["rows"] if r["status"] == "ok"]
    all_ms += [t["tuned_ms"] for seed in tuned.values() for t in seed.values() if t.get("tuned_ms")]
    reference = [0.0, 2.0 * max(args.budgets)]
    per_run: dict[str, Any] = {}
    for key, run in runs.items():
        mode, seed = key.rsplit("-seed", 1)
        ok = [r for r in run["rows"] if r["status"] == "ok" and r["latency_ms"] is not None]
        if mode == "baseline":
            meas = tuned.get(seed, {})
            points = [(r, meas[r["arch_id"]]["tuned_ms"]) for r in ok if meas.get(r["arch_id"], {}).get("tuned_ms")]
        else:
            points = [(r, r["latency_ms"]) for r in ok]
        values = [[r["accuracy"], ms] for r, ms in points]
        front = [points[i] for i in pareto_front(values, ["max", "min"])] if values else []
        entry: dict[str, Any] = {
            "candidates": len(run["rows"]), "ok": len(ok), "search_seconds": run["search_seconds"],
            "hypervolume_tuned": hypervolume(values, ["max", "min"], reference) if values else 0.0,
            "front_tuned": [{"arch_id": r["arch_id"], "accuracy": r["accuracy"], "tuned_ms": ms,
                             **({"default_ms": r["latency_ms"]} if mode == "baseline" else {})} for r, ms in front],
            "budgets": {},
        }
        for b in args.budgets:
            # the candidate the mode itself would pick: best accuracy under b by its own latency
            own = [r for r in ok if r["latency_ms"] <= b]
            pick = max(own, key=lambda r: (r["accuracy"], -r["latency_ms"])) if own else None
            e: dict[str, Any] = {"best_accuracy": pick["accuracy"] if pick else None,
                                 "pick": pick["arch_id"] if pick else None}
            if mode == "baseline":
                meas = tuned.get(seed, {})
                if pick is not None:
                    e["pick_tuned_ms"] = meas.get(pick["arch_id"], {}).get("tuned_ms")
                overlooked = [r for r in ok if r["latency_ms"] > b
                              and (meas.get(r["arch_id"], {}).get("tuned_ms") or math.inf) <= b]
                e["overlooked"] = [{"arch_id": r["arch_id"], "accuracy": r["accuracy"], "default_ms": r["latency_ms"],
                                    "tuned_ms": meas[r["arch_id"]]["tuned_ms"]} for r in overlooked]
                e["overlooked_more_accurate_than_pick"] = sum(
                    r["accuracy"] > (pick["accuracy"] if pick else -1) for r in overlooked)
                fits = [(r["accuracy"], ms) for r, ms in points if ms <= b]
                e["best_accuracy_by_tuned_latency"] = max(a for a, _ in fits) if fits else None
            entry["budgets"][f"{b:g}"] = e
        per_run[key] = entry
    aggregate: dict[str, Any] = {}
    for mode in MODES:
        entries = [v for k, v in per_run.items() if k.startswith(mode + "-seed")]
        if not entries:
            continue
        hv = [e["hypervolume_tuned"] for e in entries]
        agg: dict[str, Any] = {"seeds": len(entries), "hypervolume_mean": float(np.mean(hv)),
                               "hypervolume_std": float(np.std(hv)),
                               "candidates_mean": float(np.mean([e["candidates"] for e in entries]))}
        for b in args.budgets:
            accs = [e["budgets"][f"{b:g}"]["best_accuracy"] for e in entries]
            got = [a for a in accs if a is not None]
            agg[f"best_accuracy_under_{b:g}ms"] = {"mean": float(np.mean(got)) if got else None,
                                                  "met_in_seeds": len(got), "values": accs}
            if mode == "baseline":
                agg[f"overlooked_under_{b:g}ms"] = int(sum(len(e["budgets"][f"{b:g}"]["overlooked"]) for e in entries))
        aggregate[mode] = agg
    return {"reference_point": {"accuracy": reference[0], "latency_ms": reference[1]},
            "tuned_latency_range_ms": [min(all_ms), max(all_ms)] if all_ms else None,
            "per_run": per_run, "aggregate": aggregate, **hypervolume_ratios(per_run)}


def hypervolume_ratios(per_run: dict[str, Any]) -> dict[str, Any]:
    """Hypervolume (on tuned latency) of each co-search mode over the baseline's, seed by seed (same seed,
    same wall clock), and the mean over the seeds where both ran: ``hypervolume_ratio_<mode>_over_baseline``
    (None while no seed has both) and ``..._per_seed``."""
    out: dict[str, Any] = {}
    for mode in MODES[1:]:
        name = f"hypervolume_ratio_{mode.replace('-', '_')}_over_baseline"
        ratios = {}
        for key, entry in per_run.items():
            m, seed = key.rsplit("-seed", 1)
            base = per_run.get(f"baseline-seed{seed}")
            if m == mode and base is not None and base["hypervolume_tuned"] > 0:
                ratios[seed] = entry["hypervolume_tuned"] / base["hypervolume_tuned"]
        out[name] = float(np.mean(list(ratios.values()))) if ratios else None
        out[name + "_per_seed"] = ratios
    return out


def plot(summary: dict[str, Any], budgets: Sequence[float]) -> Any:
    """The fronts on tuned latency, one line per run, and the budgets: a matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {"baseline": "tab:gray", "two-stage": "tab:blue", "one-stage": "tab:orange"}
    for key, entry in summary["per_run"].items():
        mode = key.rsplit("-seed", 1)[0]
        pts = sorted((p["tuned_ms"], p["accuracy"]) for p in entry["front_tuned"])
        if pts:
            xs, ys = zip(*pts)
            ax.step(xs, ys, where="post", color=colors[mode], alpha=0.8, marker="o", ms=3,
                    label=mode if not any(line.get_label() == mode for line in ax.lines) else None)
    for b in budgets:
        ax.axvline(b, color="k", ls=":", lw=1)
    ax.set_xlabel("tuned latency (ms)")
    ax.set_ylabel("accuracy (inherited weights)")
    ax.set_title("fronts on tuned latency, one line per seed")
    ax.legend()
    fig.tight_layout()
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "work_dir", "quiet")}
    # the searches resume from their run directories; the file keeps only the re-measurements (its
    # `tuned_remeasure`), under the same settings
    result = ResultFile("cosearch_vs_baseline", args.out, settings)
    payload = result.payload
    tuned: dict[str, dict[str, Any]] = payload.setdefault("tuned_remeasure", {})
    payload.update({"work_dir": str(args.work_dir), "complete": False})
    runs: dict[str, Any] = {}

    def save() -> None:
        summary = summarize(args, runs, tuned) if runs else None
        # the checked interface: the mean ratios at the top level too
        payload.update({k: v for k, v in (summary or hypervolume_ratios({})).items()
                        if k.startswith("hypervolume_ratio_") and not k.endswith("_per_seed")})
        payload["summary"] = summary
        result.save()

    for seed in range(args.seeds):
        for mode in MODES:
            key = f"{mode}-seed{seed}"
            print(f"[cosearch_vs_baseline] {key}: {args.time_per_run:g} s of search", file=sys.stderr)
            runs[key] = run_one(args, mode, seed)
            save()
        base = runs[f"baseline-seed{seed}"]
        ids = pick_for_remeasure(base["rows"], args.budgets, args.remeasure)
        print(f"[cosearch_vs_baseline] seed {seed}: tuning {len(ids)} baseline candidates", file=sys.stderr)
        remeasure(args, seed, base, ids, tuned.setdefault(str(seed), {}), save)
        save()
    payload["complete"] = True
    save()
    summary = payload["summary"]
    result.figure(plot(summary, args.budgets))
    header, rows = table_rows(summary, args.budgets)
    print(result.table(header, rows, digits=4) + _notes(summary, args.budgets))
    return 0


def table_rows(summary: dict[str, Any], budgets: Sequence[float]) -> tuple[list[str], list[list[Any]]]:
    """The per-mode markdown table (`benchmarks.common.markdown_table`): seeds, mean candidates, hypervolume on
    tuned latency (mean, std), and per budget the mean best accuracy and the seeds that met the budget."""
    header = ["mode", "seeds", "candidates", "HV (tuned) mean", "HV std"]
    for b in budgets:
        header += [f"best acc <= {b:g} ms", f"seeds met <= {b:g} ms"]
    rows = []
    for mode, a in summary["aggregate"].items():
        row: list[Any] = [mode, a["seeds"], a["candidates_mean"], a["hypervolume_mean"], a["hypervolume_std"]]
        for b in budgets:
            acc = a[f"best_accuracy_under_{b:g}ms"]
            row += [acc["mean"], f"{acc['met_in_seeds']}/{a['seeds']}"]
        rows.append(row)
    return header, rows


def _notes(summary: dict[str, Any], budgets: Sequence[float]) -> str:
    """The figures beside the table: what the baseline overlooked, the hypervolume ratios."""
    lines = []
    for b in budgets:
        n = summary["aggregate"].get("baseline", {}).get(f"overlooked_under_{b:g}ms")
        lines.append(f"overlooked by the baseline under {b:g} ms: {n}")
    for mode in MODES[1:]:
        r = summary.get(f"hypervolume_ratio_{mode.replace('-', '_')}_over_baseline")
        lines.append(f"hypervolume {mode} / baseline (mean over seeds): {'n/a' if r is None else f'{r:.3f}'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
