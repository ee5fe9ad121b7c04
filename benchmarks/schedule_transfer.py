"""Do schedules transfer between networks? (the survey's figures 2 and 3)

VGG-16, ResNet-18, ResNet-34, MobileNet-V2 and MNASNet (`archspace.zoo`, published definitions,
random weights, 10 classes), exported to ONNX at batch 1 and `--resolution` x `--resolution`
(default 32: the CIFAR size, which the 2-core CPU can search in the budget). At 32 x 32 VGG-16's
trunk ends at 1 x 1, where the published 7 x 7 adaptive pooling would only copy that one pixel
49 times (and the legacy ONNX exporter refuses it); the copy is dropped and the first classifier
layer takes the 512 features directly (512 -> 4096, as CIFAR ports of VGG do). Everything else is
the published definition at full width.

For each network, in order:

1. untuned: TVM with no schedule, the module as imported and compiled by `tvm.compile`'s default
   pipeline (LegalizeOps + dlight's default CPU rules: convolutions unscheduled, i.e. not parallel,
   not vectorised; GEMV and reductions get dlight's schedules);
2. policy search: `--policies` global policies sampled from `ScheduleSpace()` (seeded by the
   network's name, so each network draws its own candidates); each is one `ScheduleConfig` applied
   to every conv / dense layer through `GlobalPolicy` (tiles clamped to fit each layer), built,
   checked against onnxruntime and timed by `schedules.measure.Protocol`; best = lowest median.

Then the matrix: network j compiled under network i's best policy (the diagonal is the search's own
measurement), speed-up = untuned latency of j / latency of j under policy i. Last, the ceiling:
MetaSchedule (`schedules.tuner.tune`, `--trials-per-task` trials) on the `--tune-top` conv / dense
tasks of each network with the most MACs that the shared database has not seen, the explicit space
(`explicit_tune`, `--explicit-configs` configs) on its remaining unseen conv / dense tasks, then the
network with the database's best records (`schedules.measure.compile`: applied by
`MetaScheduleApplyDatabase`, built by `tvm.compile`; see `TUNED_COMPILE`) checked and timed the same
way, with the per-layer best tuned latencies from the database beside it.

    python -m benchmarks.schedule_transfer            # full size: 5 networks, 10 policies each
    python -m benchmarks.schedule_transfer --quick    # ResNet-18 + MNASNet at 16 x 16, 2 policies

Results go to benchmarks/results/schedule_transfer.json (+ .png, the heat map, and .md, the speed-up
table), rewritten atomically after every policy, matrix cell and ceiling (`benchmarks.common.ResultFile`);
a rerun of the same command (same settings and work directory) resumes where it stopped.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, ResultFile, Size, add_sizes, read_json, resolve_sizes, save_figure

NETWORKS = ("vgg16", "resnet18", "resnet34", "mobilenet_v2", "mnasnet")
LABELS = {"vgg16": "VGG-16", "resnet18": "ResNet-18", "resnet34": "ResNet-34", "mobilenet_v2": "MobileNet-V2",
          "mnasnet": "MNASNet"}
CONV_KINDS = ("conv2d", "depthwise_conv2d", "pointwise_conv2d", "dense")
NAME = "schedule_transfer"
QUICK_NETWORKS = ("resnet18", "mnasnet")
#: the options whose default differs between --quick and a full run
SIZES = {"resolution": Size(quick=16, full=32, help="input size"),
         "policies": Size(quick=2, full=10, help="global policies sampled per network"),
         "tune_top": Size(quick=1, full=6, help="MetaSchedule-tune this many unseen conv/dense tasks per network, "
                                                "most MACs first"),
         "explicit_configs": Size(quick=0, full=4, help="explicit-space configs per remaining unseen conv/dense task"),
         "warmup": Size(quick=1, full=3, help="untimed runs"),
         "repeats": Size(quick=3, full=15, help="timed runs")}


def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_sizes(p, SIZES, "ResNet-18 and MNASNet at 16 x 16, 2 policies, tiny tuning budget (minutes)")
    p.add_argument("--networks", nargs="+", choices=NETWORKS, default=None,
                   help=f"networks (default all five; quick: {' '.join(QUICK_NETWORKS)})")
    p.add_argument("--trials-per-task", type=int, default=16, help="MetaSchedule trials per tuned task (>= 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", type=Path, default=Path(".nacos-cache/schedule_transfer"),
                   help="ONNX files and the tuning database (kept: a rerun resumes)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "schedule_transfer.json")
    p.add_argument("--png", type=Path, default=None, help="heat map (default: --out with .png)")
    args = resolve_sizes(p.parse_args(argv), SIZES)
    args.networks = list(args.networks or (QUICK_NETWORKS if args.quick else NETWORKS))
    args.png = args.png or args.out.with_suffix(".png")
    if args.policies < 1:
        p.error("--policies must be >= 1")
    return args


def _settings(args) -> dict[str, Any]:
    return {"networks": args.networks, "resolution": args.resolution, "batch": 1, "num_classes": 10,
            "policies": args.policies, "trials_per_task": args.trials_per_task, "tune_top": args.tune_top,
            "explicit_configs": args.explicit_configs, "warmup": args.warmup, "repeats": args.repeats,
            "seed": args.seed}


# -- networks ---------------------------------------------------------------------------------------
def build_network(name: str, resolution: int):
    """The zoo network with 10 classes; VGG-16 without the 7 x 7 copy when its trunk ends at 1 x 1."""
    from torch import nn

    from archspace.zoo import build_zoo_model

    model = build_zoo_model(name, num_classes=10)
    side = resolution // 32           # VGG-16's trunk halves the input 5 times
    if name == "vgg16" and side < 7:  # the 7 x 7 adaptive pooling would copy pixels: keep the features as they are
        if side < 1:
            from archspace.errors import ArchSpaceError

            raise ArchSpaceError(f"vgg16 needs an input of at least 32 x 32, got {resolution}")
        model.pool = nn.Identity()
        model.classifier[0] = nn.Linear(512 * side * side, 4096)
        model.eval()
    return model


def _export(name: str, resolution: int, work_dir: Path, seed: int) -> Path:
    import torch

    from archspace.export import export_module

    path = work_dir / f"{name}_{resolution}.onnx"
    if path.exists():
        return path
    torch.manual_seed(seed)
    model = build_network(name, resolution)
    return export_module(model, torch.randn(1, 3, resolution, resolution), path, seed=seed)


def sample_policies(name: str, n: int, seed: int) -> list[Any]:
    """`n` distinct global `ScheduleConfig`s from `ScheduleSpace()`, drawn with the network's own seed."""
    from schedules.explicit.space import ScheduleSpace

    rng = random.Random(f"{seed}:{name}")
    space = ScheduleSpace()
    out: list[Any] = []
    for _ in range(50 * n):
        c = space.sample(rng)
        if c not in out:
            out.append(c)
        if len(out) == n:
            break
    return out


# -- measurement ------------------------------------------------------------------------------------
def _measurement(m, extra: dict[str, Any]) -> dict[str, Any]:
    if not m.ok:
        return {"ok": False, "median_ms": None, "error": m.error, **extra}
    return {"ok": True, "median_ms": m.median_ms, "std_ms": m.std_ms, "p95_ms": m.p95_ms, "min_ms": m.min_ms,
            "runs": m.runs, **extra}


def measure_untuned(onnx_path: Path, target, protocol) -> dict[str, Any]:
    from schedules.measure import compile, measure

    t0 = time.perf_counter()
    try:
        compiled = compile(onnx_path, None, target)
    except Exception as exc:  # a build error is data
        return {"ok": False, "median_ms": None, "error": f"build error: {type(exc).__name__}: {exc}"[:400]}
    return _measurement(measure(compiled, protocol), {"build_s": time.perf_counter() - t0})


def measure_policy(onnx_path: Path, config, target, protocol) -> dict[str, Any]:
    """Every conv / dense function of the network under `GlobalPolicy(config)`; built, checked, timed."""
    from schedules.explicit.space import GlobalPolicy, LayerShape
    from schedules.measure import compile_scheduled, measure

    policy = GlobalPolicy(config)
    try:
        compiled, notes = compile_scheduled(onnx_path, lambda fn, key: policy.for_layer(LayerShape(*key[:5])),
                                            target)
    except Exception as exc:  # a policy that does not build is data
        return {"ok": False, "median_ms": None, "error": _build_error(exc)}
    unscheduled = sorted(k for k, v in notes.items() if v not in ("ok", "elementwise"))  # elementwise: its own schedule
    return _measurement(measure(compiled, protocol), {"build_s": compiled.seconds, "layers": len(notes),
                                                      "unscheduled_layers": unscheduled})


def _build_error(exc: BaseException) -> str:
    """A build error as one line: TVM's messages end with the line that says what went wrong."""
    text = str(exc).strip().splitlines()
    return f"build error: {type(exc).__name__}: {(text[-1] if text else '')[:300]}"


#: How the ceiling is compiled: `schedules.measure.compile(onnx, db)`, which applies the database's records
#: with `MetaScheduleApplyDatabase` and builds with `tvm.compile`'s default pipeline. (Its first route,
#: MetaSchedule's `compile_relax`, ran VGG-16 at 32 px in 1147 ms tuned against 1115 ms untuned; this one
#: in 175 ms. A result whose ceiling says another `compiled_by` is measured again on resume.)
TUNED_COMPILE = "MetaScheduleApplyDatabase + tvm.compile"


def measure_tuned(onnx_path: Path, db, target, protocol) -> dict[str, Any]:
    """The network with the database's best records applied, built, checked and timed."""
    from schedules.measure import compile, measure

    try:
        compiled = compile(onnx_path, db, target)
    except Exception as exc:  # a build error is data
        return {"ok": False, "median_ms": None, "compiled_by": TUNED_COMPILE, "error": _build_error(exc)}
    return _measurement(measure(compiled, protocol), {"build_s": compiled.seconds, "compiled_by": TUNED_COMPILE})


def measure_ceiling(onnx_path: Path, db, target, protocol, args) -> dict[str, Any]:
    """MetaSchedule on the largest unseen conv / dense tasks, the explicit space on the rest; then the
    network with the database's best records, and the per-layer best tuned latencies."""
    from schedules.frontend import extract_workloads, import_onnx
    from schedules.tuner import TuneReport, explicit_tune, tune

    mod = import_onnx(onnx_path)
    workloads = extract_workloads(mod, target)
    convs = [w for w in workloads if w.op_kind in CONV_KINDS]
    unseen = db.unseen(convs)
    top = sorted(unseen, key=lambda w: -w.macs * w.count)[: args.tune_top]
    t0 = time.perf_counter()
    ms_report = TuneReport()
    if top:
        ms_report = tune(mod, db, target, trials_per_task=args.trials_per_task, seed=args.seed,
                         kinds=CONV_KINDS, only={w.structural_hash for w in top})
    ex_report = (explicit_tune(mod, db, target, configs_per_task=args.explicit_configs, seed=args.seed)
                 if args.explicit_configs > 0 else TuneReport())
    tune_s = time.perf_counter() - t0
    ms_names = {w.name for w in top}
    ex_names = {w.name for w in ex_report.tuned}
    layers = []
    for w in convs:
        rec = db.lookup(w)
        layers.append({"task": w.name, "kind": w.op_kind, "macs": w.macs, "count": w.count,
                       "tuned_ms": rec.run_ms if rec and rec.records else None,
                       "by": ("metaschedule" if w.name in ms_names else "explicit" if w.name in ex_names
                              else "reused" if rec and rec.records else "untuned")})
    result = measure_tuned(onnx_path, db, target, protocol)
    cov = db.coverage(workloads)
    result.update({"tasks": len(workloads), "conv_tasks": len(convs), "unseen_conv_tasks": len(unseen),
                   "metaschedule_tasks": sorted(ms_names), "metaschedule_trials": ms_report.trials,
                   "explicit_tasks": len(ex_report.tuned), "explicit_configs_tried": ex_report.trials,
                   "faults": len(ms_report.faults) + len(ex_report.faults), "tune_s": tune_s,
                   "coverage_macs": cov.macs, "layers": layers,
                   "sum_layer_tuned_ms": sum((x["tuned_ms"] or 0.0) * x["count"] for x in layers)})
    return result


# -- summary ----------------------------------------------------------------------------------------
def _speedup(untuned: dict | None, cell: dict | None) -> float | None:
    if not untuned or not cell or not untuned.get("ok") or not cell.get("ok"):
        return None
    return untuned["median_ms"] / cell["median_ms"]


def _summarize(payload: dict[str, Any]) -> None:
    names = payload["settings"]["networks"]
    nets = payload["networks"]
    cells = payload["matrix_cells"]
    lat = [[None] * len(names) for _ in names]
    spd = [[None] * len(names) for _ in names]
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            cell = cells.get(f"{a}->{b}")
            if a == b and a in nets and nets[a].get("best"):
                cell = nets[a]["best"]["measurement"]
            if cell and cell.get("ok"):
                lat[i][j] = cell["median_ms"]
                spd[i][j] = _speedup(nets.get(b, {}).get("untuned"), cell)
    payload["matrix"] = {"rows": "policy of (network whose best policy is applied)",
                         "columns": "applied to", "networks": names, "latency_ms": lat, "speedup": spd}
    ceiling = {}
    for b in names:
        c = nets.get(b, {}).get("ceiling")
        ceiling[b] = {"latency_ms": c.get("median_ms") if c else None,
                      "speedup": _speedup(nets.get(b, {}).get("untuned"), c)}
    payload["ceiling"] = ceiling
    per_net = {}
    off_total = off_slow = 0
    own_best = 0
    columns_full = 0
    for j, b in enumerate(names):
        col = [spd[i][j] for i in range(len(names))]
        row = [spd[j][k] for k in range(len(names)) if k != j]
        known = [x for x in col if x is not None]
        best_i = max(range(len(names)), key=lambda i: col[i] if col[i] is not None else -1) if known else None
        full = len(known) == len(names)
        columns_full += full
        slow_row = sum(1 for x in row if x is not None and x < 1.0)
        per_net[b] = {
            "own_policy_best_of_all_applied": (best_i == j) if full else None,
            "best_policy_on_it": names[best_i] if full else None,
            "own_speedup": col[j], "best_speedup": max(known) if known else None,
            "own_policy_slows_down_others": slow_row,
            "own_policy_applied_to_others": sum(1 for x in row if x is not None),
            "others_policies_slowing_it": sum(1 for i, x in enumerate(col) if i != j and x is not None and x < 1.0),
            "ceiling_speedup": ceiling[b]["speedup"],
        }
        own_best += bool(full and best_i == j)
        off_total += sum(1 for i, x in enumerate(col) if i != j and x is not None)
        off_slow += sum(1 for i, x in enumerate(col) if i != j and x is not None and x < 1.0)
    # how much a borrowed policy loses against the network's own: geomean of (own latency / borrowed)
    ratios = [spd[i][j] / spd[j][j] for i in range(len(names)) for j in range(len(names))
              if i != j and spd[i][j] and spd[j][j]]
    payload["summary"] = {
        "per_network": per_net,
        "networks_whose_own_policy_is_best": own_best, "columns_complete": columns_full,
        "off_diagonal_cells": off_total, "off_diagonal_slowdowns": off_slow,
        "off_diagonal_worse_than_own": sum(1 for r in ratios if r < 1.0),
        "geomean_borrowed_over_own_speedup": (math.exp(sum(math.log(r) for r in ratios) / len(ratios))
                                              if ratios else None),
    }
    complete_matrix = all(spd[i][j] is not None or _failed_cell(payload, names[i], names[j])
                          for i in range(len(names)) for j in range(len(names)))
    payload["complete"] = bool(complete_matrix and all(nets.get(b, {}).get("ceiling") for b in names))
    n = len(names)
    payload["claim"] = {
        "statement": "the policy best for one network is not best for the others (some even slow them down)",
        "specific": f"own policy is the best of the {n} applied to it on {own_best} of {columns_full} networks",
        "slowdowns": f"{off_slow} of {off_total} off-diagonal cells are slow-downs (speed-up < 1)",
        "holds": (None if columns_full < n else bool(own_best > n / 2 and off_slow > 0)),
        "rule": "holds when the own policy wins on a majority of networks and at least one borrowed policy "
                "is slower than untuned",
    }
    payload["claim_holds"] = payload["claim"]["holds"]  # top level, as every benchmark's verdict


def _failed_cell(payload, a, b) -> bool:
    cell = (payload["networks"].get(a, {}).get("best") or {}).get("measurement") if a == b \
        else payload["matrix_cells"].get(f"{a}->{b}")
    return bool(cell) and not cell.get("ok")


def _plot(payload: dict[str, Any]) -> Any:
    """The heat map: speed-up over untuned (log2 colour scale) of every matrix cell and of the ceiling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    names = payload["settings"]["networks"]
    spd = payload["matrix"]["speedup"]
    ceil = [payload["ceiling"][b]["speedup"] for b in names]
    rows = [[x if x is not None else np.nan for x in r] for r in spd] + [[x if x is not None else np.nan for x in ceil]]
    data = np.log2(np.array(rows, dtype=float))
    finite = data[np.isfinite(data)]
    lim = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 3, 1.0 * len(rows) + 1.8))
    im = ax.imshow(data, cmap="RdBu", norm=TwoSlopeNorm(0.0, -lim, lim), aspect="auto")
    labels = [LABELS[n] for n in names]
    ax.set_xticks(range(len(names)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [f"{label}'s best policy" for label in labels] + ["MetaSchedule (ceiling)"])
    ax.axhline(len(names) - 0.5, color="black", lw=2)
    for i, r in enumerate(rows):
        for j, v in enumerate(r):
            text = "n/a" if not np.isfinite(v) else f"{v:.2f}"
            weight = "bold" if i == j else "normal"
            ax.text(j, i, text, ha="center", va="center", fontsize=9, weight=weight,
                    color="white" if np.isfinite(data[i, j]) and abs(data[i, j]) > 0.6 * lim else "black")
    ax.set_xlabel("applied to")
    res = payload["settings"]["resolution"]
    ax.set_title(f"Speed-up over untuned TVM (batch 1, {res}x{res}); bold: own policy"
                 + ("" if payload.get("complete") else " [partial]"), fontsize=10)
    cb = fig.colorbar(im, ax=ax)
    cb.set_label("log2 speed-up")
    fig.tight_layout()
    return fig


TABLE_CORNER = "best policy of \\ applied to"


def _table_rows(payload: dict[str, Any]) -> list[list[Any]]:
    """The speed-up matrix (row: whose best policy; column: applied to), the ceiling's speed-ups, and the
    latencies untuned, under the own best policy and tuned, as the README's table has them."""
    names = payload["settings"]["networks"]
    nets = payload["networks"]
    spd = payload["matrix"]["speedup"]

    def ms(b: str, *path: str) -> float | None:
        node: Any = nets.get(b, {})
        for key in path:
            node = (node or {}).get(key)
        return node

    rows: list[list[Any]] = [[LABELS[a], *spd[i]] for i, a in enumerate(names)]
    rows.append(["MetaSchedule (ceiling)", *(payload["ceiling"][b]["speedup"] for b in names)])
    rows.append(["untuned ms", *(ms(b, "untuned", "median_ms") for b in names)])
    rows.append(["own best policy ms", *(ms(b, "best", "measurement", "median_ms") for b in names)])
    rows.append(["MetaSchedule ms", *(ms(b, "ceiling", "median_ms") for b in names)])
    return rows


def main(argv=None) -> int:
    args = _parse(argv)

    from schedules.database import TuningDatabase
    from schedules.frontend import extract_workloads, import_onnx
    from schedules.measure import Protocol
    from schedules.records import ScheduleConfig
    from schedules.targets import host_target, host_threads, versions

    threads = host_threads()
    target = host_target(threads)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    protocol = Protocol(warmup=args.warmup, repeats=args.repeats)
    # Resume (`ResultFile`: same benchmark, same `settings`) only a file of the same work dir: its ceilings
    # were tuned into that directory's database.
    previous = read_json(args.out) or {}
    result = ResultFile(NAME, args.out, _settings(args), resume=previous.get("work_dir") == str(args.work_dir))
    payload = result.payload
    if not result.resumed:
        payload.update({"work_dir": str(args.work_dir), "target": str(target), "threads": threads,
                        "versions": dict(versions()),
                        "untuned_means": "tvm.compile of the imported module with no schedule and no tuning "
                                         "records: LegalizeOps + dlight's default CPU rules (convolutions "
                                         "unscheduled: not parallel, not vectorised)",
                        "networks": {}, "matrix_cells": {}})
    payload["tuned_compile"] = TUNED_COMPILE  # what a ceiling's `compiled_by` says when it is measured this way
    nets = payload["networks"]

    def save() -> str:
        """Summarise, rewrite the JSON atomically and the markdown table beside it (returned)."""
        _summarize(payload)
        result.save()
        return result.table([TABLE_CORNER, *(LABELS[b] for b in args.networks)], _table_rows(payload), digits=2)

    def plot() -> None:
        fig = _plot(payload)
        if args.png == result.path.with_suffix(".png"):
            result.figure(fig)
        else:  # --png elsewhere: `ResultFile.figure` writes only beside the JSON
            save_figure(fig, args.png)

    def log(msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    # Step 1. Per network: export, untuned baseline, global-policy search.
    paths = {}
    for name in args.networks:
        paths[name] = _export(name, args.resolution, args.work_dir, args.seed)
        entry = nets.setdefault(name, {"onnx": str(paths[name]), "policies": []})
        if "untuned" not in entry:
            workloads = extract_workloads(import_onnx(paths[name]), target)
            entry["tasks"] = len(workloads)
            entry["conv_tasks"] = sum(w.op_kind in CONV_KINDS for w in workloads)
            entry["macs"] = sum(w.macs * w.count for w in workloads)
            entry["untuned"] = measure_untuned(paths[name], target, protocol)
            save()
            log(f"{name}: untuned {entry['untuned'].get('median_ms')} ms ({entry['conv_tasks']} conv/dense tasks)")
        candidates = sample_policies(name, args.policies, args.seed)
        for k, config in enumerate(candidates):
            if k < len(entry["policies"]):
                continue
            m = measure_policy(paths[name], config, target, protocol)
            entry["policies"].append({"index": k, "config": config.to_dict(), "measurement": m,
                                      "speedup": _speedup(entry["untuned"], m)})
            ok = [p for p in entry["policies"] if p["measurement"]["ok"]]
            entry["best"] = min(ok, key=lambda p: p["measurement"]["median_ms"]) if ok else None
            save()
            log(f"{name}: policy {k}: {m.get('median_ms') or m.get('error')} (build {m.get('build_s', 0):.1f} s)")
        entry["failed_policies"] = sum(not p["measurement"]["ok"] for p in entry["policies"])

    # Step 2. The matrix: each network's best policy on every other network.
    for a in args.networks:
        best = nets[a].get("best")
        for b in args.networks:
            key = f"{a}->{b}"
            if a == b or key in payload["matrix_cells"]:
                continue
            if best is None:
                payload["matrix_cells"][key] = {"ok": False, "median_ms": None, "error": f"{a} has no working policy"}
            else:
                payload["matrix_cells"][key] = measure_policy(paths[b], ScheduleConfig.from_dict(best["config"]),
                                                              target, protocol)
            save()
            plot()
            cell = payload["matrix_cells"][key]
            log(f"matrix {key}: {cell.get('median_ms') or cell.get('error')}")

    # Step 3. The ceiling: tuned with MetaSchedule (+ explicit space on the small tasks), one database.
    db = TuningDatabase(args.work_dir / "db")
    for name in args.networks:
        old = nets[name].get("ceiling")
        if old and old.get("compiled_by") != TUNED_COMPILE:
            # tuned by an earlier run but compiled the old way: keep its tuning figures, measure again
            keep = {k: v for k, v in old.items() if k not in ("ok", "median_ms", "std_ms", "p95_ms", "min_ms",
                                                              "runs", "error", "build_s")}
            keep["schedules_measure_compile_ms"] = old.get("median_ms")
            nets[name]["ceiling"] = {**keep, **measure_tuned(paths[name], db, target, protocol)}
            save()
            log(f"{name}: tuned, measured again: {nets[name]['ceiling'].get('median_ms')} ms")
            continue
        if old:
            continue
        nets[name]["ceiling"] = measure_ceiling(paths[name], db, target, protocol, args)
        save()
        plot()
        c = nets[name]["ceiling"]
        log(f"{name}: tuned {c.get('median_ms') or c.get('error')} ms ({c['metaschedule_trials']} MetaSchedule trials, "
            f"{c['tune_s']:.0f} s)")

    table = save()
    plot()
    print(table, end="")
    print(payload["claim"]["specific"] + "; " + payload["claim"]["slowdowns"] + f"; holds: {payload['claim']['holds']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
