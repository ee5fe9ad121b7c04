"""A latency model for a new device from K measurements (issue 14, point 5): leave-one-device-out on the
NAS-Bench-201 table of ten devices (`../shared/DATA.md`).

One device (``--target-device``) is the new one: K of its rows are the shots (drawn at random by
``--seed``), the model learns from every other ``lat_ms_*`` column of the table and those K latencies
(`costmodels.device_transfer`), and is scored on the target's remaining rows (Spearman, Kendall, share
within +-10 %). Beside it: training on the K shots alone (op counts, no other device) and the MACs of
the cell's network (no measurement at all).

    python -m benchmarks.device_transfer --target-device lat_ms_gold_6226 --shots 10 --seed 0 --json
    python -m benchmarks.device_transfer --all-devices --seeds 10      # writes results/device_transfer.json
    python -m benchmarks.device_transfer --all-devices --quick         # K = 5, 10; 2 seeds; no xgb (seconds)

``--all-devices`` rewrites the JSON after each device (a rerun of the same settings resumes after the
last one done) and writes the figure (``.png``: mean Spearman against K per method) and the table
(``.md``: Spearman per device) beside it, through `benchmarks.common`'s harness.

Exit status 2, with the reason on stderr, for a missing table or column, K < 2 or too few rows.
Without ``--table`` and with the shared table absent, it says so and exits 0 (a user's clone has no
``../shared``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS_DIR, ResultFile, Size, add_sizes, resolve_sizes
from costmodels.datasets import parse_nb201
from costmodels.device_transfer import (
    LAT_PREFIX,
    METHODS,
    DeviceTable,
    TransferConfig,
    predict_device,
    select_shots,
)
from costmodels.errors import CostModelError
from costmodels.metrics import kendall_tau, spearman, within_pct

NAME = "device_transfer"
DEFAULT_METHOD = "ridge_select"
AIM = 0.95
#: MACs per edge over the whole exported network (15 cells) and of the skeleton (stem, reductions,
#: classifier), read off exported ONNX graphs by `archspace.nb201_macs.MacsModel` and checked
#: against full exports there (`benchmarks/results/tabular_benchmark.json`, prediction.macs)
EDGE_MACS = {"none": 0, "skip_connect": 0, "avg_pool_3x3": 0, "nor_conv_1x1": 3_932_160, "nor_conv_3x3": 35_389_440}
SKELETON_MACS = 7_783_040
#: --all-devices: the sizes of a full and a --quick run (`benchmarks.common.Size`)
SIZES = {"seeds": Size(2, 10, "--all-devices: seeds 0..N-1 per (device, K)"),
         "shots_list": Size("5,10", "5,10,20", "--all-devices: the K values", str)}
#: HELP (Lee et al., NeurIPS 2021), table 3, via ../shared/DATA.md
PUBLISHED = {"help_10_samples_gold_6226": 0.989, "help_mean_six_devices": 0.932, "flops_gold_6226": 0.826,
             "flops_mean_six_devices": 0.787, "brp_nas_900_samples_gold_6226": 0.796}


def default_table() -> Path:
    from archspace.nb201 import default_table_path

    return Path(default_table_path())


def macs(arch: str, live_only: bool) -> int:
    """MACs of the cell's network: every non-`none` edge, or only the live ones (what the exported graph keeps)."""
    from archspace.nb201 import live_edges

    ops = tuple(op for op, _, _ in parse_nb201(arch))
    edges = live_edges(ops) if live_only else [k for k, op in enumerate(ops) if op != "none"]
    if live_only and not edges:
        return 640                                   # the classifier only: the cell folds to a constant
    return SKELETON_MACS + sum(EDGE_MACS[ops[k]] for k in edges)


def scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {"spearman": spearman(truth, pred), "kendall": kendall_tau(truth, pred),
            "within_10pct": within_pct(truth, pred, 10.0)}


def transfer_once(table: DeviceTable, target: str, k: int, seed: int, method: str = DEFAULT_METHOD,
                  config: TransferConfig | None = None) -> dict[str, Any]:
    """One new device, K shots, one seed: the prediction scored on the target's rows that were not shots."""
    j = table.column(target)
    if len(table.devices) < 2:
        raise CostModelError(f"{table.path}: {table.devices[j]} is the only latency column; the model needs "
                             "at least one other device to learn from")
    shots = select_shots(len(table), k, seed)
    rest = np.setdiff1d(np.arange(len(table)), shots)
    source = np.delete(table.latency_ms, j, axis=1)
    names = [d for i, d in enumerate(table.devices) if i != j]
    truth = table.latency_ms[:, j]
    pred = predict_device(source, shots, truth[shots], source_names=names, archs=table.archs, method=method,
                          config=config)
    return {"target_device": table.devices[j], "shots": k, "seed": seed, "method": method,
            "n_scored": int(rest.size), **scores(truth[rest], pred.pred_ms[rest]),
            "mape": float(np.mean(np.abs(pred.pred_ms[rest] - truth[rest]) / truth[rest])),
            "chosen": pred.chosen, "shot_rows": shots.tolist()}


def run_single(args: argparse.Namespace, table: DeviceTable) -> dict[str, Any]:
    out = transfer_once(table, args.target_device, args.shots, args.seed, args.method)
    j = table.column(args.target_device)
    rest = np.setdiff1d(np.arange(len(table)), np.asarray(out["shot_rows"]))
    truth = table.latency_ms[rest, j]
    alone = transfer_once(table, args.target_device, args.shots, args.seed, "shots_only")
    base = {"shots_only": {m: alone[m] for m in ("spearman", "kendall", "within_10pct")}}
    m = np.array([macs(table.archs[r], live_only=False) for r in rest], dtype=np.float64)
    base["macs_all_edges"] = {"spearman": spearman(truth, m), "kendall": kendall_tau(truth, m)}
    out["baselines"] = base
    out["table"] = str(table.path)
    return out


def _device_row(args: argparse.Namespace, table: DeviceTable, j: int, dev: str, ks: list[int],
                methods: list[str]) -> dict[str, Any]:
    """One device held out: per K and method, the scores over seeds 0..N-1; the MACs baselines beside."""
    t0 = time.time()
    truth = table.latency_ms[:, j]
    row: dict[str, Any] = {"device": dev[len(LAT_PREFIX):], "column": dev,
                           "macs_live_spearman": spearman(truth, [macs(a, True) for a in table.archs]),
                           "macs_all_edges_spearman": spearman(truth, [macs(a, False) for a in table.archs]),
                           "shots": {}}
    for k in ks:
        per: dict[str, Any] = {}
        for method in methods:
            runs = [transfer_once(table, dev, k, seed, method) for seed in range(args.seeds)]
            rho = np.array([r["spearman"] for r in runs])
            per[method] = {"spearman_mean": float(rho.mean()), "spearman_sd": float(rho.std(ddof=1)) if rho.size > 1
                           else 0.0, "spearman_min": float(rho.min()),
                           "kendall_mean": float(np.mean([r["kendall"] for r in runs])),
                           "within_10pct_mean": float(np.mean([r["within_10pct"] for r in runs])),
                           "chosen_seed0": runs[0]["chosen"]}
        row["shots"][str(k)] = per
    row["seconds"] = round(time.time() - t0, 1)
    return row


def _summarize(payload: dict[str, Any]) -> None:
    """The means over the devices done so far, the headline and the aim (`complete` once all are done)."""
    s = payload["settings"]
    ks, methods, devices = s["shots"], s["methods"], payload["devices"]

    def mean_over_devices(k: int, method: str) -> float:
        return float(np.mean([d["shots"][str(k)][method]["spearman_mean"] for d in devices]))

    summary: dict[str, Any] = {str(k): {m: mean_over_devices(k, m) for m in methods} for k in ks}
    summary["macs_live"] = float(np.mean([d["macs_live_spearman"] for d in devices]))
    summary["macs_all_edges"] = float(np.mean([d["macs_all_edges_spearman"] for d in devices]))
    headline = summary["10"][DEFAULT_METHOD] if "10" in summary else None
    n_dev = len(devices)
    payload["complete"] = n_dev == len(s["devices"])
    payload["mean_spearman_10_shots"] = headline
    payload["aim"] = {"text": f"mean Spearman >= {AIM} with 10 shots over the {n_dev} devices, each held out in turn",
                      "threshold": AIM, "value": headline, "met": bool(headline is not None and headline >= AIM)}
    payload["mean_spearman_by_shots"] = summary
    payload["seconds"] = round(sum(d["seconds"] for d in devices), 1)


def _plot(result: ResultFile) -> None:
    """Mean Spearman over the held-out devices against K, one line per method; the MACs baselines flat."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    payload = result.payload
    ks, by_k = payload["settings"]["shots"], payload["mean_spearman_by_shots"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in payload["settings"]["methods"]:
        ax.plot(ks, [by_k[str(k)][method] for k in ks], "o-", label=method)
    ax.axhline(by_k["macs_live"], color="gray", ls="--", label="MACs (live edges)")
    ax.axhline(AIM, color="black", lw=0.8, ls=":", label=f"aim {AIM}")
    ax.set_xlabel("K: shots measured on the new device")
    ax.set_ylabel(f"mean Spearman over {len(payload['devices'])} devices")
    ax.set_xticks(ks)
    ax.legend(fontsize=8)
    ax.set_title("NAS-Bench-201: a new device from K measurements", fontsize=10)
    fig.tight_layout()
    result.figure(fig)


def _table(result: ResultFile) -> str:
    """Devices by rows: Spearman of the default method at each K, of the shots alone and of the MACs."""
    payload = result.payload
    ks, devices = payload["settings"]["shots"], payload["devices"]
    kmax = str(max(ks))
    header = ["device", *(f"K={k}" for k in ks), f"K={kmax} shots only", "MACs (live edges)"]
    rows = [[d["device"], *(d["shots"][str(k)][DEFAULT_METHOD]["spearman_mean"] for k in ks),
             d["shots"][kmax]["shots_only"]["spearman_mean"], d["macs_live_spearman"]] for d in devices]
    by_k = payload["mean_spearman_by_shots"]
    rows.append(["**mean**", *(by_k[str(k)][DEFAULT_METHOD] for k in ks), by_k[kmax]["shots_only"],
                 by_k["macs_live"]])
    return result.table(header, rows)


def run_all(args: argparse.Namespace, table: DeviceTable) -> dict[str, Any]:
    """Every device held out in turn; `args.out` rewritten after each device and resumed by a rerun of the
    same settings (the devices already in it are kept); the PNG and the markdown table beside it."""
    ks = [int(x) for x in args.shots_list.split(",")]
    methods = [m for m in METHODS if m != "xgb" or not args.no_xgb]
    settings = {"table": str(table.path), "rows": len(table), "devices": list(table.devices), "shots": ks,
                "seeds": args.seeds, "method": DEFAULT_METHOD, "methods": methods,
                "shot_rule": "uniformly at random without replacement, numpy default_rng(seed), seeds 0..N-1",
                "scored_on": "the held-out device's rows that were not shots",
                "config": TransferConfig().__dict__}
    result = ResultFile(NAME, args.out, settings)
    payload = result.payload
    payload.update({"table": str(table.path), "rows": len(table), "published": PUBLISHED})
    devices: list[dict[str, Any]] = payload.setdefault("devices", [])
    done = {d["column"] for d in devices}
    for j, dev in enumerate(table.devices):
        if dev in done:
            continue
        row = _device_row(args, table, j, dev, ks, methods)
        devices.append(row)
        _summarize(payload)
        result.save()
        if not args.quiet:
            print(f"{row['device']}: " + ", ".join(f"K={k} {row['shots'][str(k)][DEFAULT_METHOD]['spearman_mean']:.3f}"
                                                  for k in ks), file=sys.stderr)
    _summarize(payload)
    result.save()
    _plot(result)
    text = _table(result)
    if not args.quiet:
        print(text, file=sys.stderr)
    return payload


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.device_transfer", description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", type=Path, default=None,
                    help="CSV of the NAS-Bench-201 layout (default: $NACOS_NB201_CSV or ../shared/data/nasbench201/)")
    ap.add_argument("--target-device", default="lat_ms_gold_6226", help="the new device's column (lat_ms_X or X)")
    ap.add_argument("--shots", type=int, default=10, help="K: rows measured on the target device")
    ap.add_argument("--seed", type=int, default=0, help="which K rows (random, by this seed)")
    ap.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--all-devices", action="store_true",
                    help=f"every device held out in turn, every K of --shots-list, --seeds seeds; writes {NAME}.json")
    add_sizes(ap, SIZES, "--all-devices at test size: K = 5 and 10, 2 seeds, no xgb (seconds)")
    ap.add_argument("--no-xgb", action="store_true", help="--all-devices: leave out the (slowest) xgb method")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / f"{NAME}.json",
                    help="--all-devices: where to write (and the .png / .md beside it); a rerun of the same "
                         "settings resumes it")
    ap.add_argument("--quiet", action="store_true")
    args = resolve_sizes(ap.parse_args(argv), SIZES)
    args.no_xgb = args.no_xgb or args.quick

    path = args.table or default_table()
    if args.table is None and not path.is_file():
        print(f"{NAME}: skipped: NAS-Bench-201 table absent at {path} (see ../shared/DATA.md; set $NACOS_NB201_CSV "
              "or pass --table)", file=sys.stderr)
        return 0
    try:
        if args.shots < 2:
            raise CostModelError(f"--shots: need K >= 2 measurements of the target device, got {args.shots}")
        table = DeviceTable.from_csv(path)
        if args.all_devices:
            if args.seeds < 1:
                raise CostModelError(f"--seeds must be >= 1, got {args.seeds}")
            result = run_all(args, table)
            if not args.quiet:
                print(f"wrote {args.out}: mean Spearman at 10 shots {result['mean_spearman_10_shots']}",
                      file=sys.stderr)
        else:
            table.column(args.target_device)
            result = run_single(args, table)
    except CostModelError as exc:
        print(f"{NAME}: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    elif not args.all_devices:
        print(f"{result['target_device']}, K={result['shots']}, seed {result['seed']}, {result['method']}: "
              f"Spearman {result['spearman']:.4f}, Kendall {result['kendall']:.4f}, "
              f"within 10 % {result['within_10pct']:.3f} on {result['n_scored']} rows; shots alone Spearman "
              f"{result['baselines']['shots_only']['spearman']:.4f}, MACs "
              f"{result['baselines']['macs_all_edges']['spearman']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
