"""The inner loop against what users run instead: tuned TVM vs onnxruntime vs torch eager, through one
tuning database shared by sampled architectures and the five published networks.

Rows, in order, all tuned into one database (so hit rate and tuning seconds per row show it filling):

1. sampled architectures (`ArchSpace()` with seeds 0, 1, ...; ONNX 1x1xRxR at the space's resolution);
2. then the published networks (`--networks`, default VGG-16, ResNet-18, ResNet-34, MobileNet-V2, MNASNet
   from `archspace.zoo`: published definitions, random weights, 10 classes, ONNX 1x3xSxS at
   `--network-resolution`, default 32; VGG-16 without its 7x7 pooling copy, as in
   `benchmarks/schedule_transfer.py`).

For each row: export ONNX, extract its workloads, look them up in the shared database (hit rate), tune the
unseen ones (MetaSchedule on the unseen tasks with the most MACs, `--trials-per-task` trials each:
`--tune-top` of them for a sampled architecture, `--network-tune-top` for a network; the explicit
`ScheduleConfig` space, `--explicit-configs` / `--network-explicit-configs` configs each, on the remaining
unseen conv / dense tasks; fused elementwise tasks without a record are left to TVM's default lowering),
then measure untuned TVM, tuned TVM, onnxruntime and torch eager by one protocol and thread count, each
runtime in a fresh process of its own (`schedules.isolated`: TVM's thread pool pins the threads of the
process that configures it to one core, and spinning pools slow whatever runs beside them).
Achieved GFLOP/s (2 FLOPs per MAC) is set against this machine's measured peak (best of a few fp32
matrix products through numpy's BLAS with the same threads) and, for the roofline, its measured memory
bandwidth (a 256 MiB numpy copy), both measured by `costmodels.roofline`; a row's arithmetic intensity is its
FLOPs over the bytes its layers read and write (sum over layers, no cache reuse assumed).

    python -m benchmarks.inner_loop            # full size: 10 architectures, then the 5 networks at 32x32
    python -m benchmarks.inner_loop --quick    # 2 architectures, ResNet-18 + ResNet-34 at 16x16 (minutes)
    python -m benchmarks.inner_loop --networks # sampled architectures only (no network rows)
    python -m benchmarks.inner_loop --pretuned .nacos-cache/tuning-db   # after `nacos pretune`

With ``--pretuned DIR`` (a database that `nacos pretune` filled for the default space) the work dir's
database starts as a copy of it: each sampled row then tunes only what the pretuning left uncovered, and
the top level says what the pretuning cost and covered (`pretune_seconds`, `space_task_coverage`,
`space_mac_coverage`) and what a new architecture still pays (`amortized_tuning_seconds_per_arch`: the
mean tuning seconds of the sampled rows). The published networks are outside the space: they tune as before.

Rows are written after every row (atomic rewrite of the JSON through `benchmarks.common.ResultFile`, the
markdown table of the rows beside it, and the PNG: latency per row, tuning seconds and hit rate per row,
roofline); a rerun of the same command resumes after the last finished row, reusing the database in
--work-dir. The sampled rows are kept when the sampled settings match (`settings`) and the work dir is the
same; the network rows when the network settings match too (`network_settings`; otherwise only
the network rows are measured again). The database-filling figures are only meaningful when the work
dir's database was filled by the rows before: `summary.database_continuity` says when it was not, and
each row's `tasks_in_earlier_rows` counts its tasks that an earlier row also has (whatever the database holds);
`summary.rows_with_hits_from_outside` lists rows that found more records than the rows before them can have
left (an earlier run in the same work dir, or the row's own tuning before an interruption).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    RESULTS_DIR,
    ResultFile,
    Size,
    add_sizes,
    command_line,
    geomean_or_none,
    markdown_table,
    read_json,
    resolve_sizes,
    save_figure,
)

CONV_KINDS = ("conv2d", "depthwise_conv2d", "pointwise_conv2d", "dense")
NETWORKS = ("vgg16", "resnet18", "resnet34", "mobilenet_v2", "mnasnet")
LABELS = {"vgg16": "VGG-16", "resnet18": "ResNet-18", "resnet34": "ResNet-34", "mobilenet_v2": "MobileNet-V2",
          "mnasnet": "MNASNet"}
QUICK_NETWORKS = ("resnet18", "resnet34")  # ResNet-34 has ResNet-18's conv shapes: it shows the reuse cheaply


#: The roofline's roofs (`costmodels.roofline`): the best of `PEAK_REPEATS` fp32 n x n matrix products
#: for each n of `PEAK_SIZES` on the benchmark's threads, and copies of a `COPY_MIB` MiB array
PEAK_SIZES, PEAK_REPEATS = (1024, 2048), 5
COPY_MIB, COPY_REPEATS = 256, 5


def _peak_gflops(threads: int) -> float:
    from costmodels.roofline import measure_peak_gflops

    return measure_peak_gflops(PEAK_SIZES, PEAK_REPEATS, threads=threads)


def _bandwidth_gbs() -> tuple[float, str]:
    """This machine's memory bandwidth (GB/s) and how it was measured."""
    from costmodels.roofline import bandwidth_method, measure_bandwidth_gbs

    return measure_bandwidth_gbs(COPY_MIB, COPY_REPEATS), bandwidth_method(COPY_MIB, COPY_REPEATS)


#: the options whose default differs between --quick and a full run (`benchmarks.common.add_sizes`)
SIZES = {
    "archs": Size(quick=2, full=10, help="architectures"),
    "tune_top": Size(quick=1, full=4,
                     help="MetaSchedule-tune this many unseen tasks per architecture, most MACs first"),
    "explicit_configs": Size(quick=2, full=4, help="explicit-space configs per remaining unseen conv/dense task"),
    "network_resolution": Size(quick=16, full=32, help="networks' input size"),
    "network_tune_top": Size(quick=1, full=8,
                             help="MetaSchedule-tune this many unseen tasks per network, most MACs first"),
    "network_explicit_configs": Size(quick=1, full=4,
                                     help="explicit-space configs per remaining unseen conv/dense task of a network"),
    "repeats": Size(quick=10, full=30, help="timed repeats"),
}


def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_sizes(p, SIZES, "2 architectures and ResNet-18 + ResNet-34 at 16x16, smaller budgets")
    p.add_argument("--trials-per-task", type=int, default=16, help="MetaSchedule trials per tuned task")
    p.add_argument("--networks", nargs="*", default=None, metavar="NAME",
                   help=f"published networks after the architectures, from {', '.join(NETWORKS)} (default all "
                        f"five, quick {' '.join(QUICK_NETWORKS)}; the option alone: none)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pretuned", type=Path, default=None, metavar="DIR",
                   help="start the work dir's database as a copy of this pretuned one (`nacos pretune`'s "
                        "--database; only when the work dir has no database yet)")
    p.add_argument("--work-dir", type=Path, default=Path(".nacos-cache/inner_loop"),
                   help="tuning database and ONNX files (kept: a rerun resumes)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "inner_loop.json")
    p.add_argument("--png", type=Path, default=None, help="figure (default: --out with .png)")
    p.add_argument("--remeasure", action="store_true",
                   help="measure the finished rows again (references, untuned, tuned with the database as it is "
                        "now), keeping their tuning figures; for a fix in compile or measure")
    p.add_argument("--refresh-only", action="store_true",
                   help="tune and measure nothing: recompute the finished rows' derived figures (roofline, "
                        "summary) and redraw the figure")
    args = resolve_sizes(p.parse_args(argv), SIZES)
    args.networks = list(args.networks if args.networks is not None
                         else (QUICK_NETWORKS if args.quick else NETWORKS))
    unknown = [n for n in args.networks if n not in NETWORKS]
    if unknown:
        p.error(f"--networks: unknown {unknown}; choose from {', '.join(NETWORKS)}")
    if len(set(args.networks)) != len(args.networks):
        p.error("--networks: a network is named twice")
    args.png = args.png or args.out.with_suffix(".png")
    if args.pretuned is not None and not (args.pretuned / "database_workload.json").is_file():
        p.error(f"--pretuned: {args.pretuned} is not a tuning database (no database_workload.json)")
    if args.archs < 0 or args.tune_top < 0 or args.network_tune_top < 0:
        p.error("--archs, --tune-top and --network-tune-top must be >= 0")
    if args.network_resolution < 1:
        p.error("--network-resolution must be >= 1")
    return args


def _settings(args) -> dict[str, Any]:
    """The sampled part's settings (unchanged since the first full run: its rows resume under them)."""
    settings = {"archs": args.archs, "trials_per_task": args.trials_per_task, "tune_top": args.tune_top,
                "explicit_configs": args.explicit_configs, "warmup": args.warmup, "repeats": args.repeats,
                "seed": args.seed}
    if args.pretuned is not None:
        settings["pretuned"] = str(args.pretuned)
    return settings


def _network_settings(args) -> dict[str, Any]:
    return {"networks": list(args.networks), "resolution": args.network_resolution, "batch": 1, "in_channels": 3,
            "num_classes": 10, "trials_per_task": args.trials_per_task, "tune_top": args.network_tune_top,
            "explicit_configs": args.network_explicit_configs, "warmup": args.warmup, "repeats": args.repeats,
            "seed": args.seed}


# -- summary --------------------------------------------------------------------------------------
def _ratio(a, b) -> float | None:
    return a / b if a is not None and b is not None and b > 0 else None


def _span(xs) -> list[float] | None:
    xs = [x for x in xs if x is not None]
    return [min(xs), max(xs)] if xs else None


def _row_derived(row: dict[str, Any], peak: float, bandwidth: float | None) -> None:
    """Figures computed from a row's measured ones (also for rows written by an earlier version)."""
    row.setdefault("kind", "sampled")
    row.setdefault("name", f"arch{row['index']}")
    row["tvm_over_ort"] = _ratio(row.get("tvm_tuned_ms"), row.get("ort_ms"))
    row["tvm_over_torch"] = _ratio(row.get("tvm_tuned_ms"), row.get("torch_ms"))
    row["tuned_over_untuned"] = _ratio(row.get("tvm_tuned_ms"), row.get("tvm_untuned_ms"))
    flops = 2.0 * row["macs"]
    row["flops"] = flops
    def gf(ms):
        return flops / (ms * 1e-3) / 1e9 if ms else None

    row["tuned_gflops"] = gf(row.get("tvm_tuned_ms"))
    row["ort_gflops"] = gf(row.get("ort_ms"))
    row["fraction_of_peak"] = row["tuned_gflops"] / peak if row["tuned_gflops"] else None
    nbytes = row.get("bytes")
    row["intensity"] = flops / nbytes if nbytes else None
    if row["intensity"] and bandwidth:
        row["attainable_gflops"] = min(peak, row["intensity"] * bandwidth)
        row["fraction_of_roofline"] = (row["tuned_gflops"] / row["attainable_gflops"]
                                       if row["tuned_gflops"] else None)


def _part_summary(rows: list[dict[str, Any]], peak: float) -> dict[str, Any]:
    return {
        "rows": len(rows),
        "geomean_tuned_tvm_over_ort": geomean_or_none(r["tvm_over_ort"] for r in rows),
        "geomean_tuned_tvm_over_torch": geomean_or_none(r["tvm_over_torch"] for r in rows),
        "geomean_untuned_tvm_over_ort": geomean_or_none(_ratio(r["tvm_untuned_ms"], r["ort_ms"]) for r in rows),
        "geomean_tuned_over_untuned_tvm": geomean_or_none(r["tuned_over_untuned"] for r in rows),
        "tuned_faster_than_untuned": sum(1 for r in rows if r["tuned_over_untuned"] is not None
                                         and r["tuned_over_untuned"] < 1.0),
        "tuned_faster_than_ort": sum(1 for r in rows if r["tvm_over_ort"] is not None and r["tvm_over_ort"] < 1.0),
        "tuned_faster_than_torch": sum(1 for r in rows
                                       if r["tvm_over_torch"] is not None and r["tvm_over_torch"] < 1.0),
        "tuning_seconds_total": sum(r["tune_seconds"] for r in rows),
        "tuned_gflops": _span(r["tuned_gflops"] for r in rows),
        "fraction_of_peak": _span(r["fraction_of_peak"] for r in rows),
        "fraction_of_roofline": _span(r.get("fraction_of_roofline") for r in rows),
        "ort_gflops": _span(r["ort_gflops"] for r in rows),
        "ort_rows_above_measured_peak": sum(1 for r in rows if r["ort_gflops"] and r["ort_gflops"] > peak),
    }


def _summarize(payload: dict[str, Any]) -> None:
    rows = payload["rows"]
    peak, bw = payload["peak_gflops"], payload.get("bandwidth_gbs")
    for r in rows:
        _row_derived(r, peak, bw)
    rows.sort(key=lambda r: r["index"])
    sampled = [r for r in rows if r["kind"] == "sampled"]
    nets = [r for r in rows if r["kind"] == "network"]
    # the sampled part's figures under their original names (docs and older readers use them)
    payload["geomean_tvm_over_ort"] = geomean_or_none(r["tvm_over_ort"] for r in sampled)
    payload["geomean_untuned_over_ort"] = geomean_or_none(_ratio(r["tvm_untuned_ms"], r["ort_ms"]) for r in sampled)
    payload["hit_rate_last"] = sampled[-1]["hit_rate"] if sampled else None
    trials = sum(r["ms_trials"] for r in rows)
    secs = sum(r["ms_seconds"] for r in rows)
    payload["seconds_per_trial"] = secs / trials if trials else None
    payload["tuning_seconds_total"] = sum(r["tune_seconds"] for r in rows)
    pretune = payload.get("pretune") or {}
    cov = pretune.get("coverage") or {}
    payload["pretune_seconds"] = pretune.get("pretune_seconds")
    payload["space_task_coverage"] = cov.get("space_task_coverage")
    payload["space_mac_coverage"] = cov.get("space_mac_coverage")
    payload["amortized_tuning_seconds_per_arch"] = (
        sum(r["tune_seconds"] for r in sampled) / len(sampled) if pretune and sampled else None)
    continuity = "ok"
    first_net = nets[0] if nets else None
    if first_net is not None and sampled and first_net.get("db_tuned_before") == 0:
        continuity = ("the network rows were tuned into a database without the sampled architectures' records "
                      "(the work dir was recreated): their hit rates count only reuse among the networks; "
                      "tasks_in_earlier_rows counts the tasks a continuous database could have offered")
    # a hit on a task no earlier row has: the database held records from elsewhere (an earlier run in the same
    # work dir, or this row's own tuning before an interruption and a resume)
    outside = [{"name": r["name"], "hits": r["tasks"] - r["new_tasks"],
                "tasks_in_earlier_rows": r["tasks_in_earlier_rows"]}
               for r in rows if r.get("tasks_in_earlier_rows") is not None
               and r["tasks"] - r["new_tasks"] > r["tasks_in_earlier_rows"]]
    payload["summary"] = {
        "sampled": _part_summary(sampled, peak),
        "networks": _part_summary(nets, peak),
        "all": _part_summary(rows, peak),
        "database_filling": [
            {"index": r["index"], "name": r["name"], "kind": r["kind"], "tasks": r["tasks"],
             "new_tasks": r["new_tasks"],
             "hit_rate": r["hit_rate"], "tasks_in_earlier_rows": r.get("tasks_in_earlier_rows"),
             "tune_seconds": r["tune_seconds"], "ms_trials": r["ms_trials"],
             "explicit_configs_tried": r["explicit_configs_tried"], "db_tuned_before": r.get("db_tuned_before")}
            for r in rows],
        "database_continuity": continuity,
        "rows_with_hits_from_outside": outside,
        "roofline": {"peak_gflops": peak, "bandwidth_gbs": bw, "ridge_intensity": (peak / bw) if bw else None,
                     "rows": [{"name": r["name"], "tuned_gflops": r["tuned_gflops"], "ort_gflops": r["ort_gflops"],
                               "fraction_of_peak": r["fraction_of_peak"], "intensity": r.get("intensity"),
                               "attainable_gflops": r.get("attainable_gflops"),
                               "fraction_of_roofline": r.get("fraction_of_roofline")} for r in rows]},
    }
    done_nets = {r["name"] for r in nets}
    payload["complete"] = (len(sampled) >= payload["settings"]["archs"]
                           and all(n in done_nets for n in payload["network_settings"]["networks"]))


#: the columns of the rows' markdown table (`benchmarks.common.markdown_table`; beside the JSON as .md)
TABLE_HEADER = ("#", "name", "res", "tasks", "hit rate", "untuned ms", "tuned ms", "ort ms", "torch ms", "tvm/ort",
                "tvm/torch", "tune s", "GFLOP/s", "% peak")


def _table_rows(rows) -> list[list[Any]]:
    """One markdown-table row per benchmark row (`TABLE_HEADER`): derived figures as `_row_derived` left them."""
    def pct(x):
        return 100 * x if x else None

    return [[r["index"], r["name"], r["resolution"], r["tasks"], float(r["hit_rate"]), r["tvm_untuned_ms"],
             r["tvm_tuned_ms"], r["ort_ms"], r["torch_ms"], r.get("tvm_over_ort"), r.get("tvm_over_torch"),
             float(r["tune_seconds"]), r.get("tuned_gflops"), pct(r.get("fraction_of_peak"))] for r in rows]


def _table(rows) -> str:
    return markdown_table(TABLE_HEADER, _table_rows(rows))


# -- figure ---------------------------------------------------------------------------------------
def _plot(payload: dict[str, Any]) -> Any:
    """The figure of the rows (None without rows): latency per row, the database filling, the roofline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    rows = payload["rows"]
    if not rows:
        return None
    labels = [LABELS.get(r["name"], r["name"]) for r in rows]
    x = np.arange(len(rows))
    n_sampled = sum(r["kind"] == "sampled" for r in rows)
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(max(8.0, 0.62 * len(rows) + 3), 13))
    # panel 1: latency per row
    series = (("tvm_untuned_ms", "TVM untuned", "#bbbbbb"), ("tvm_tuned_ms", "TVM tuned", "#1f77b4"),
              ("ort_ms", "onnxruntime", "#ff7f0e"), ("torch_ms", "torch eager", "#2ca02c"))
    w = 0.2
    for k, (key, name, color) in enumerate(series):
        vals = [r[key] if r[key] else np.nan for r in rows]
        ax1.bar(x + (k - 1.5) * w, vals, w, label=name, color=color)
    ax1.set_yscale("log")
    ax1.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax1.set_ylabel("latency, ms (median, log)")
    ax1.set_xticks(x, labels, rotation=30, ha="right")
    ax1.legend(ncol=4, fontsize=8, loc="upper left")
    s = payload["summary"]
    title = (f"batch 1, {payload['threads']} threads; tuned TVM / onnxruntime (geomean): sampled "
             f"{_fmt(s['sampled']['geomean_tuned_tvm_over_ort'])}, "
             f"networks {_fmt(s['networks']['geomean_tuned_tvm_over_ort'])}")
    ax1.set_title(title + ("" if payload.get("complete") else " [partial]"), fontsize=10)
    # panel 2: tuning seconds and hit rate, in database order
    ax2.bar(x, [r["tune_seconds"] for r in rows],
            color=["#1f77b4" if r["kind"] == "sampled" else "#9467bd" for r in rows])
    ax2.set_ylabel("tuning seconds")
    ax2.set_xticks(x, [f"{r['index']}\n{lab}" for r, lab in zip(rows, labels)], fontsize=7)
    ax2b = ax2.twinx()
    ax2b.plot(x, [r["hit_rate"] for r in rows], "o-", color="#d62728", label="database hit rate")
    if all(r.get("tasks_in_earlier_rows") is not None for r in rows):
        ax2b.plot(x, [r["tasks_in_earlier_rows"] / r["tasks"] for r in rows], "x--", color="#d62728", alpha=0.6,
                  label="share of tasks an earlier row has")
    ax2b.legend(fontsize=8, loc="upper right")
    ax2b.set_ylim(0, 1.05)
    ax2b.set_ylabel("database hit rate", color="#d62728")
    ax2.set_title("the shared database filling: tuning time (bars; purple: networks) and hit rate (lines) per row",
                  fontsize=10)
    for ax in (ax1, ax2):
        if 0 < n_sampled < len(rows):
            ax.axvline(n_sampled - 0.5, color="black", lw=1, ls="--")
    # panel 3: roofline (achieved GFLOP/s against arithmetic intensity) or, without bandwidth, the peak line
    peak, bw = payload["peak_gflops"], payload.get("bandwidth_gbs")
    inten = [r.get("intensity") for r in rows]
    if bw and all(inten):
        xs = np.geomspace(min(min(inten), peak / bw) / 4, max(max(inten), peak / bw) * 4, 200)
        ax3.plot(xs, np.minimum(peak, xs * bw), "k-", lw=1.5,
                 label=f"roofline: peak {peak:.1f} GFLOP/s, {bw:.1f} GB/s")
        for kind, marker in (("sampled", "o"), ("network", "s")):
            sel = [r for r in rows if r["kind"] == kind]
            if not sel:
                continue
            ax3.scatter([r["intensity"] for r in sel], [r["tuned_gflops"] or np.nan for r in sel], marker=marker,
                        color="#1f77b4", label=f"tuned TVM ({'sampled' if kind == 'sampled' else 'networks'})")
            ax3.scatter([r["intensity"] for r in sel], [r["ort_gflops"] or np.nan for r in sel], marker=marker,
                        facecolors="none", edgecolors="#ff7f0e",
                        label=f"onnxruntime ({'sampled' if kind == 'sampled' else 'networks'})")
        for r in rows:
            if r["kind"] == "network" and r["tuned_gflops"]:
                ax3.annotate(LABELS.get(r["name"], r["name"]), (r["intensity"], r["tuned_gflops"]), fontsize=7,
                             xytext=(3, 3), textcoords="offset points")
        ax3.set_xscale("log")
        ax3.set_yscale("log")
        for axis in (ax3.xaxis, ax3.yaxis):
            axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax3.set_xlabel("arithmetic intensity, FLOP / byte (layer inputs + weights + outputs)")
    else:
        ax3.axhline(peak, color="black", lw=1.5, label=f"measured peak {peak:.1f} GFLOP/s")
        ax3.bar(x, [r["tuned_gflops"] or np.nan for r in rows], color="#1f77b4", label="tuned TVM")
        ax3.set_xticks(x, labels, rotation=30, ha="right")
    ax3.set_ylabel("GFLOP/s")
    ax3.legend(fontsize=8, loc="best")
    above = payload["summary"]["all"]["ort_rows_above_measured_peak"]
    ax3.set_title("achieved GFLOP/s against the measured machine peak (numpy BLAS)"
                  + (f"; onnxruntime passes it on {above} row(s)" if above else ""), fontsize=10)
    fig.tight_layout()
    return fig


def _fmt(x) -> str:
    return f"{x:.2f}" if x is not None else "n/a"


# -- measurement ----------------------------------------------------------------------------------
def torch_sampled_architecture(arch_json: str) -> Any:
    """The torch module of a sampled architecture of the default space (10 classes, random weights):
    the builder a timing child calls (`schedules.isolated.time_torch_isolated`)."""
    from archspace import Architecture, ArchSpace, build_network

    return build_network(Architecture.from_json(arch_json), ArchSpace(), 1, 10)


def _measure_row(onnx_path, torch_builder: tuple[str, list[Any]], shape, db, target, protocol, threads,
                 workloads) -> dict[str, Any]:
    """The latency figures of one row: onnxruntime, torch eager, untuned and tuned TVM, each runtime in a
    fresh process of its own (`schedules.isolated`), one after the other and with the same threads, so
    none shares its cores or affinity with another's pool (this process has configured TVM's pool while
    tuning: it pins this process's threads to one core). Both TVM figures come from one TVM process."""
    from schedules.isolated import TimingWorker, target_spec, time_onnxruntime_isolated, time_torch_isolated

    ort = time_onnxruntime_isolated(onnx_path, protocol, threads)
    torch_m = time_torch_isolated(*torch_builder, shape, protocol, threads)
    spec = target_spec(target)
    with TimingWorker() as tvm_process:
        untuned = tvm_process.tvm(onnx_path, None, spec, protocol, threads)
        tuned = tvm_process.tvm(onnx_path, db.path, spec, protocol, threads)
    def ok(m):
        return m.median_ms if m.ok else None

    return {
        "macs": sum(w.macs * w.count for w in workloads), "bytes": sum(w.bytes * w.count for w in workloads),
        "tvm_untuned_ms": ok(untuned), "tvm_tuned_ms": ok(tuned), "ort_ms": ok(ort), "torch_ms": ok(torch_m),
        "tvm_tuned": tuned.to_dict(), "timed_in": "each runtime in a process of its own",
        "errors": {k: m.error for k, m in (("untuned", untuned), ("tuned", tuned), ("ort", ort), ("torch", torch_m))
                   if not m.ok},
    }


def _tune_row(mod, workloads, db, target, trials_per_task, tune_top, explicit_configs, seed) -> dict[str, Any]:
    """Tune the row's unseen workloads into `db`: MetaSchedule on the `tune_top` with the most MACs,
    the explicit space on the remaining unseen conv / dense ones. Returns the tuning figures."""
    from schedules.tuner import TuneReport, explicit_tune, tune

    db_before = len(db.covered())
    unseen = db.unseen(workloads)
    t0 = time.perf_counter()
    # tasks without MACs (pooling, reshapes) are not worth MetaSchedule's trials
    top = sorted((w for w in unseen if w.macs > 0), key=lambda w: -w.macs * w.count)[:tune_top]
    ms_report = None
    if top:
        ms_report = tune(mod, db, target, trials_per_task=trials_per_task, seed=seed, kinds=None,
                         only={w.structural_hash for w in top})
    ex_report = (explicit_tune(mod, db, target, configs_per_task=explicit_configs, seed=seed)
                 if explicit_configs > 0 else TuneReport())
    tune_s = time.perf_counter() - t0
    cov = db.coverage(workloads)
    return {
        "tasks": len(workloads), "new_tasks": len(unseen), "hit_rate": 1 - len(unseen) / len(workloads),
        "db_tuned_before": db_before,
        "ms_tuned_tasks": sorted(w.name for w in top), "ms_trials": ms_report.trials if ms_report else 0,
        "ms_seconds": ms_report.seconds if ms_report else 0.0,
        "explicit_tuned_tasks": len(ex_report.tuned), "explicit_configs_tried": ex_report.trials,
        "faults": len(ex_report.faults) + (len(ms_report.faults) if ms_report else 0),
        "tune_seconds": tune_s, "coverage_tasks": cov.tasks, "coverage_macs": cov.macs,
    }


def _items(args, space):
    """(index, name, kind, extra row fields, ONNX maker, torch builder (import path, JSON arguments),
    input shape, budgets), in order."""
    from archspace import export_onnx
    from benchmarks.schedule_transfer import _export as export_zoo_network

    for i in range(args.archs):
        arch = space.sample(random.Random(args.seed + i))
        yield (i, f"arch{args.seed + i}", "sampled", {"arch": arch.to_json(), "resolution": arch.resolution},
               lambda arch=arch, i=i: export_onnx(arch, args.work_dir / f"arch{args.seed + i}.onnx", batch=1),
               ("benchmarks.inner_loop:torch_sampled_architecture", [arch.to_json()]),
               (1, 1, arch.resolution, arch.resolution),
               (args.tune_top, args.explicit_configs))
    res = args.network_resolution
    for j, name in enumerate(args.networks):
        yield (args.archs + j, name, "network", {"label": LABELS[name], "resolution": res, "in_channels": 3},
               lambda name=name: export_zoo_network(name, res, args.work_dir, args.seed),
               ("benchmarks.schedule_transfer:build_network", [name, res]), (1, 3, res, res),
               (args.network_tune_top, args.network_explicit_configs))


def _start_from_pretuned(pretuned: Path, db_dir: Path, space: Any, target: Any) -> dict[str, Any] | None:
    """Copy the pretuned database to `db_dir` when that has none yet, and return what the pretuning had
    covered then (`nacos.search.space_tasks.pretune_status` of the copy; None when `db_dir` already existed)."""
    import shutil

    from nacos.search.space_tasks import pretune_status
    from schedules.database import TuningDatabase

    if (db_dir / "database_workload.json").exists():
        return None
    shutil.copytree(pretuned, db_dir, ignore=shutil.ignore_patterns("ms_logs", ".lock"), dirs_exist_ok=True)
    status = pretune_status(TuningDatabase(db_dir), space, target)
    status["source"] = str(pretuned)
    return status


def main(argv=None) -> int:
    args = _parse(argv)
    from archspace import ArchSpace
    from schedules.database import TuningDatabase
    from schedules.frontend import extract_workloads, import_onnx
    from schedules.measure import Protocol
    from schedules.targets import host_target, host_threads

    threads = host_threads()
    target = host_target(threads)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    pretune = None
    if args.pretuned is not None:
        pretune = _start_from_pretuned(args.pretuned, args.work_dir / "db", ArchSpace(), target)
    db = TuningDatabase(args.work_dir / "db", target=target)  # this machine's records are what it has
    protocol = Protocol(warmup=args.warmup, repeats=args.repeats)
    settings, net_settings = _settings(args), _network_settings(args)
    # Resume (`ResultFile`: same benchmark, same `settings`) only a file of the same work dir: its rows' hit
    # rates and tuning seconds describe that directory's database. The resume is then row by row: the
    # sampled rows are kept, the network rows only under the same `network_settings` (below).
    previous = read_json(args.out) or {}
    result = ResultFile("inner_loop", args.out, settings, resume=previous.get("work_dir") == str(args.work_dir))
    payload = result.payload
    if result.resumed:
        if args.refresh_only:  # nothing is run: the file still describes the command that measured it
            payload["command"] = previous.get("command", payload["command"])
        for r in payload["rows"]:  # rows written before the network part have neither
            r.setdefault("kind", "sampled")
            r.setdefault("name", f"arch{args.seed + r['index']}")
        if payload.get("network_settings") != net_settings:  # the sampled rows stay, the network rows start over
            payload["rows"] = [r for r in payload["rows"] if r["kind"] == "sampled"]
            payload["network_settings"] = net_settings
    else:
        payload.update({"network_settings": net_settings, "work_dir": str(args.work_dir), "target": str(target),
                        "threads": threads, "peak_gflops": _peak_gflops(threads), "rows": []})
    if pretune is not None and "pretune" not in payload:
        payload["pretune"] = pretune
    payload.setdefault("runs", []).append({"command": command_line(),
                                           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    # The roofline's roofs are measured again on every run and the best is kept: a measurement taken while
    # other jobs load the machine only underestimates them.
    peaks = payload.setdefault("peak_gflops_measurements", [payload["peak_gflops"]])
    if result.resumed:  # a fresh payload has just measured it
        peaks.append(_peak_gflops(threads))
    payload["peak_gflops"] = max(peaks)
    bw, payload["bandwidth_method"] = _bandwidth_gbs()
    bws = payload.setdefault("bandwidth_gbs_measurements", [])
    bws.append(bw)
    payload["bandwidth_gbs"] = max(bws)
    payload["peak_means"] = ("best fp32 GFLOP/s of n x n matrix products through numpy's BLAS on the same threads "
                             "(n = 1024 and 2048; the first run of this file: 1024 only), best over this file's "
                             "runs: an attainable reference, not the hardware's datasheet peak (a tuned library "
                             "can pass it)")
    payload["intensity_means"] = ("2 x MACs over the bytes each layer reads and writes (inputs, weights, outputs), "
                                  "summed over layers: no reuse between layers or runs through the caches, so a "
                                  "point above the memory roof (DRAM bandwidth) ran from cache")
    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def save() -> None:
        _summarize(payload)
        result.save()
        result.table(TABLE_HEADER, _table_rows(payload["rows"]))
        fig = _plot(payload)
        if fig is None:
            return
        if args.png == result.path.with_suffix(".png"):
            result.figure(fig)
        else:  # --png elsewhere: `ResultFile.figure` writes only beside the JSON
            save_figure(fig, args.png)

    done = {r["name"]: r for r in payload["rows"]}
    space = ArchSpace()
    earlier: set[str] = set()  # structural hashes of the workloads of the rows before (whatever the database holds)
    for index, name, kind, extra, export, torch_builder, shape, (tune_top, explicit) in _items(args, space):
        onnx_path = export()
        mod = import_onnx(onnx_path)
        workloads = extract_workloads(mod, target)
        in_earlier = sum(w.structural_hash in earlier for w in workloads)
        earlier.update(w.structural_hash for w in workloads)
        row = done.get(name)
        if row is not None:
            if "bytes" not in row:  # rows of an earlier version: the roofline needs their traffic
                row["bytes"] = sum(w.bytes * w.count for w in workloads)
            row["tasks_in_earlier_rows"] = in_earlier
            if args.remeasure:
                row.update(_measure_row(onnx_path, torch_builder, shape, db, target, protocol, threads, workloads))
                row["remeasured"] = time.strftime("%Y-%m-%dT%H:%M:%S")
                save()
                print(_table([row]), flush=True)
            continue
        if args.refresh_only:
            continue
        log(f"{name}: {len(workloads)} tasks, tuning")
        row = {"index": index, "name": name, "kind": kind, **extra, "tasks_in_earlier_rows": in_earlier,
               **_tune_row(mod, workloads, db, target, args.trials_per_task, tune_top, explicit, args.seed)}
        log(f"{name}: tuned in {row['tune_seconds']:.0f} s, measuring")
        row.update(_measure_row(onnx_path, torch_builder, shape, db, target, protocol, threads, workloads))
        payload["rows"].append(row)
        done[name] = row
        save()
        print(_table([row]), flush=True)
    save()
    print(_table(payload["rows"]))
    s = payload["summary"]
    for part in ("sampled", "networks"):
        p = s[part]
        if p["rows"]:
            print(f"{part}: geomean tuned TVM / onnxruntime {_fmt(p['geomean_tuned_tvm_over_ort'])}, "
                  f"/ torch {_fmt(p['geomean_tuned_tvm_over_torch'])}, tuning {p['tuning_seconds_total']:.0f} s")
    print(f"hit rate of the last architecture: {payload['hit_rate_last']}, seconds per MetaSchedule trial: "
          f"{payload['seconds_per_trial']}; {s['database_continuity']}")
    if payload.get("pretune"):
        print(f"pretuned: {_fmt(payload['pretune_seconds'])} s, {_fmt(payload['space_task_coverage'])} of the space's "
              f"tasks, {_fmt(payload['space_mac_coverage'])} of its MACs; tuning per new architecture "
              f"{_fmt(payload['amortized_tuning_seconds_per_arch'])} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
