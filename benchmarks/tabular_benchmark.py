"""NAS-Bench-201 as ground truth from outside: search and latency prediction against published figures.

The whole NAS-Bench-201 cell space (15,625 cells) with published CIFAR-10 accuracies and latencies
measured on ten devices (`../shared/DATA.md`) is a search problem whose true Pareto front is known
exactly and a test bed for latency predictors.

1. **Search.** Aging evolution, NSGA-II and random search (`nacos.strategies`, driven by ask / tell
   on `archspace.nb201.NB201Space`) with a query budget, many seeds, on several devices:
   - NSGA-II and random search optimise (CIFAR-10 accuracy max, device latency min); each run is
     scored by the hypervolume of the points it queried over the hypervolume of the true front (the
     same stated reference point), and by the best accuracy it queried under each latency budget.
   - Aging evolution is single-objective: it maximises accuracy under a hard latency budget (a
     candidate over the budget is told as infeasible), one run per budget; it is scored on that
     budget only.
   The latency budgets of a device are percentiles (25th, 50th) of its latencies over all cells.
   A run of Q queries is run once at the largest budget: the strategies are deterministic in
   (seed, history), so its first q queries are exactly a run of q queries.
2. **Prediction.** The project's `costmodels.ArchLatencyModel` (XGBoost on the per-stage layer
   aggregates of `costmodels.datasets.nb201_layers`) trained on n cells drawn at random with one
   device's latencies, scored by Spearman and Kendall rank correlation on all the other cells, on
   every device (the train device itself, and the others: transfer). Beside it, the MACs of the real
   PyTorch networks (`archspace.nb201_macs.MacsModel`, checked against full exports), and the figures
   HELP published.
3. **Export** (build, compile with TVM, measure here) is not run by this script: see
   `benchmarks/nb201_export.py` (and the JSON's ``export`` key).

    python -m benchmarks.tabular_benchmark            # full size
    python -m benchmarks.tabular_benchmark --quick    # a couple of minutes

Every unit of work (a device's search, a (train device, n) cell of the prediction) is written as it
finishes (`benchmarks.common.ResultFile`); a rerun with the same settings resumes where the last one
stopped. Beside the JSON: the figure (.png) and the markdown tables of the search (.md), the latency
ranking (.prediction.md) and the transfer between devices (.transfer.md), also printed with their
captions.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from archspace.nb201 import live_edges
from archspace.nb201_macs import MacsModel
from benchmarks.common import RESULTS_DIR, ResultFile, add_nb201_csv_argument, nb201_table_or_skip

NAME = "tabular_benchmark"
DATASET = "cifar10"
#: HELP (Lee et al., NeurIPS 2021), table 3: Spearman rank correlation of predicted vs measured latency
#: over NAS-Bench-201 (as quoted in ../shared/DATA.md). Published figures, not results of this script.
PUBLISHED = {
    "source": "HELP (Lee et al., NeurIPS 2021), table 3, Spearman rho over NAS-Bench-201",
    "gold_6226": {"flops": 0.826, "layer_wise_predictor": 0.866, "brp_nas_900_samples": 0.796,
                  "help_10_samples": 0.989},
    "mean_over_help_six_devices": {"help_10_samples": 0.932, "flops": 0.787},
}
EXPORT_PLACEHOLDER = {
    "status": "see nb201_export.json",
    "where": ("benchmarks/results/nb201_export.json, written by `python -m benchmarks.nb201_export` (build, ONNX "
              "export, TVM compile, untuned / tuned / onnxruntime latency of a stratified sample of cells here, "
              "rank-correlated with each published device; benchmarks/README.md)"),
}


# ---------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    devices: tuple[str, ...] = ("gold_6226", "silver_4114", "raspi4", "pixel3", "samsung_a50",
                                "1080ti_1", "1080ti_32", "2080ti_1", "eyeriss", "fpga")
    strategies: tuple[str, ...] = ("aging", "nsga2", "random")
    query_budgets: tuple[int, ...] = (100, 300)
    seeds: int = 20
    #: latency budgets: these percentiles of the device's latency over all cells
    budget_percentiles: tuple[float, ...] = (25.0, 50.0)
    #: hypervolume reference: accuracy (%) and this factor times the device's slowest cell
    reference_accuracy: float = 80.0
    reference_latency_factor: float = 1.05
    population: int = 20
    #: prediction: training sizes and repetitions (different random samples) per size
    train_sizes: tuple[int, ...] = (10, 100, 900)
    reps: tuple[int, ...] = (5, 5, 3)
    #: devices a latency model is trained on (scored on every device)
    train_devices: tuple[str, ...] = ("gold_6226", "silver_4114", "raspi4", "pixel3", "samsung_a50",
                                      "1080ti_1", "1080ti_32", "2080ti_1", "eyeriss", "fpga")
    #: exported networks whose MACs are checked against the per-edge formula
    macs_checks: int = 3
    seed: int = 0

    @classmethod
    def quick(cls) -> Settings:
        return cls(devices=("gold_6226", "raspi4"), query_budgets=(30, 60), seeds=3, train_sizes=(10, 100),
                   reps=(2, 1), train_devices=("gold_6226",), macs_checks=1)

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _mean_se(values: list[float]) -> dict[str, Any]:
    a = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if a.size == 0:
        return {"mean": None, "se": None, "n": 0}
    se = float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else None
    return {"mean": round(float(a.mean()), 6), "se": None if se is None else round(se, 6), "n": int(a.size)}


# ---------------------------------------------------------------------------------------------------
# 1. Search
# ---------------------------------------------------------------------------------------------------
def _run_strategy(table, name: str, seed: int, device: str, n: int, population: int,
                  budget_ms: float | None) -> np.ndarray:
    """(n, 3) array of (accuracy, latency_ms, feasible) of the queries, in order."""
    from archspace.nb201 import NB201Space
    from nacos.strategies import make_strategy

    objectives = [("accuracy", "max")] if name == "aging" else [("accuracy", "max"), ("latency_ms", "min")]
    strategy = make_strategy(name, NB201Space(), seed, objectives=objectives,
                             **({} if name == "random" else {"population": population}))
    objective = table.objective(DATASET, device, budget_ms)
    out = np.empty((n, 3))
    for i in range(n):
        genome = strategy.ask()
        r = objective(genome)
        strategy.tell(genome, [r.metrics[o.name] for o in strategy.objectives], r.status == "ok")
        out[i] = (r.metrics["accuracy"], r.metrics["latency_ms"], r.status == "ok")
    return out


def _best_under(points: np.ndarray, budget: float) -> float | None:
    ok = points[:, 1] <= budget
    return float(points[ok, 0].max()) if ok.any() else None


def search_device(table, device: str, s: Settings) -> dict[str, Any]:
    from nacos.results.pareto import hypervolume

    senses = ["max", "min"]
    lat = table.latency_columns[device]
    ref = (s.reference_accuracy, float(lat.max()) * s.reference_latency_factor)
    true_front = table.front_points(DATASET, device)
    true_hv = hypervolume(true_front, senses, ref)
    budgets = {f"p{p:g}": float(np.percentile(lat, p)) for p in s.budget_percentiles}
    true_best = {k: table.best_under_budget(b, DATASET, device)[1] for k, b in budgets.items()}
    q_max = max(s.query_budgets)
    out: dict[str, Any] = {
        "reference_point": {"accuracy": ref[0], "latency_ms": round(ref[1], 6)},
        "true_front_size": len(true_front), "true_hypervolume": round(true_hv, 6),
        "latency_budgets_ms": {k: round(v, 6) for k, v in budgets.items()},
        "true_best_under_budget": true_best, "strategies": {},
    }
    t0 = time.time()
    for name in s.strategies:
        runs: dict[str, list[np.ndarray]] = {}
        if name == "aging":       # one run per budget, that budget hard
            for k, b in budgets.items():
                runs[k] = [_run_strategy(table, name, seed, device, q_max, s.population, b) for seed in range(s.seeds)]
        else:
            shared = [_run_strategy(table, name, seed, device, q_max, s.population, None) for seed in range(s.seeds)]
            runs = {k: shared for k in budgets}
            runs["front"] = shared
        per_q: dict[str, Any] = {}
        for q in s.query_budgets:
            entry: dict[str, Any] = {}
            if "front" in runs:
                ratios = [hypervolume(r[:q, :2], senses, ref) / true_hv for r in runs["front"]]
                entry["hypervolume_ratio"] = _mean_se(ratios)
            for k, b in budgets.items():
                found = [_best_under(r[:q], b) for r in runs[k]]
                regrets = [true_best[k] - f for f in found if f is not None]
                entry[f"best_under_{k}"] = {
                    "accuracy": _mean_se([f for f in found if f is not None]),
                    "regret": _mean_se(regrets),
                    "found_true_best": float(np.mean([f is not None and f >= true_best[k] for f in found])),
                    "runs_without_feasible": int(sum(f is None for f in found)),
                }
            per_q[str(q)] = entry
        out["strategies"][name] = per_q
    out["seconds"] = round(time.time() - t0, 2)
    return out


# ---------------------------------------------------------------------------------------------------
# 2. Prediction
# ---------------------------------------------------------------------------------------------------
def _rank_scores(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    from costmodels import kendall_tau, spearman

    return float(spearman(y_true, y_pred)), float(kendall_tau(y_true, y_pred))


class FeatureBank:
    """`costmodels` features of every cell, computed once; cells with equal features share one row (the
    model cannot tell them apart), so a prediction over the whole table is one per distinct row."""

    def __init__(self, table) -> None:
        from costmodels import arch_features
        from costmodels.datasets import nb201_layers

        self.layers = [tuple(nb201_layers(a.to_string())) for a in table.archs]
        feats = np.vstack([arch_features(ly) for ly in self.layers])
        _, first, self.inverse = np.unique(feats, axis=0, return_index=True, return_inverse=True)
        self.inverse = self.inverse.reshape(-1)
        self.representatives = [int(i) for i in first]

    def predict_all(self, model) -> np.ndarray:
        from costmodels import ArchSample

        reps = [ArchSample(self.layers[i]) for i in self.representatives]
        return np.asarray(model.predict(reps))[self.inverse]


def predict_cell(table, bank: FeatureBank, train_device: str, n: int, reps: int, s: Settings) -> dict[str, Any]:
    """Model trained on `n` random cells with `train_device`'s latency, scored on the rest on every device."""
    from costmodels import ArchLatencyModel, ArchModelConfig, ArchSample

    scores: dict[str, dict[str, list[float]]] = {d: {"spearman": [], "kendall": []} for d in table.devices}
    t0 = time.time()
    for rep in range(reps):
        digest = hashlib.sha256(f"{s.seed}:{train_device}:{n}:{rep}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
        train = rng.choice(len(table), size=n, replace=False)
        y = table.latency_columns[train_device]
        samples = [ArchSample(bank.layers[i], float(y[i]), table.archs[i].id) for i in train]
        model = ArchLatencyModel(ArchModelConfig(seed=rep)).fit(samples)
        pred = bank.predict_all(model)
        rest = np.setdiff1d(np.arange(len(table)), train)
        for d in table.devices:
            rho, tau = _rank_scores(table.latency_columns[d][rest], pred[rest])
            scores[d]["spearman"].append(rho)
            scores[d]["kendall"].append(tau)
    return {"train_device": train_device, "n_train": n, "reps": reps, "seconds": round(time.time() - t0, 2),
            "scored_on": {d: {k: _mean_se(v) for k, v in sc.items()} for d, sc in scores.items()}}


# ---------------------------------------------------------------------------------------------------
# Claims, table, plot
# ---------------------------------------------------------------------------------------------------
def _claims(result: dict[str, Any], s: Settings) -> list[dict[str, Any]]:
    claims: list[dict[str, Any]] = []
    pred = result.get("prediction", {})
    cells = pred.get("latency_model", {})
    gold = PUBLISHED["gold_6226"]

    def model_rho(train: str, n: int, on: str) -> float | None:
        c = cells.get(f"{train}/{n}")
        return None if c is None else c["scored_on"][on]["spearman"]["mean"]

    def add(text: str, ours: float | None, published: float | None, higher_is_better: bool = True) -> None:
        if ours is None:
            return
        ours = round(ours, 4)
        entry: dict[str, Any] = {"claim": text, "ours": ours}
        if published is not None:
            entry["published"] = published
            entry["holds"] = bool(ours >= published) if higher_is_better else bool(ours <= published)
            entry["verdict"] = ("reaches" if entry["holds"] else "misses") + f" the published {published}"
        claims.append(entry)

    flops = pred.get("macs_ranking", {}).get("live", {})
    if "gold_6226" in flops:
        add("MACs of the real networks rank Xeon Gold 6226 latency (Spearman) as well as HELP's FLOPs baseline",
            flops["gold_6226"]["spearman"], gold["flops"])
    every = pred.get("macs_ranking", {}).get("all_edges", {})
    if "gold_6226" in every:
        add("MACs counting every non-none edge (dead ones too, as a counter over the PyTorch modules does) rank "
            "Xeon Gold 6226 latency (Spearman) as well as HELP's FLOPs baseline",
            every["gold_6226"]["spearman"], gold["flops"])
    for n, key, label in ((10, "help_10_samples", "HELP with 10 samples (meta-learned on other devices)"),
                          (900, "layer_wise_predictor", "the layer-wise predictor (a per-layer lookup table)"),
                          (900, "brp_nas_900_samples", "BRP-NAS with 900 samples")):
        add(f"ArchLatencyModel trained on {n} Gold 6226 cells reaches {label} on Gold 6226 (Spearman)",
            model_rho("gold_6226", n, "gold_6226"), gold[key])
    own = [model_rho(d, 10, d) for d in s.train_devices]
    own = [v for v in own if v is not None]
    if own:
        add(f"ArchLatencyModel with 10 samples, mean Spearman over {len(own)} devices (each trained and scored on "
            f"itself; HELP's six devices differ) reaches HELP's mean",
            float(np.mean(own)), PUBLISHED["mean_over_help_six_devices"]["help_10_samples"])
    if flops:
        add(f"MACs ranking, mean Spearman over all {len(flops)} devices (HELP's six differ), reaches HELP's FLOPs mean",
            float(np.mean([v["spearman"] for v in flops.values()])), PUBLISHED["mean_over_help_six_devices"]["flops"])
    # Search: NSGA-II vs random, aging vs random (no published figure: a comparison within this run)
    q = str(max(s.query_budgets))
    for device, sec in result.get("search", {}).items():
        st = sec["strategies"]
        if "nsga2" in st and "random" in st:
            a, b = st["nsga2"][q]["hypervolume_ratio"], st["random"][q]["hypervolume_ratio"]
            claims.append({"claim": f"{device}: NSGA-II's front is closer to the true front than random search's "
                                    f"({q} queries, hypervolume ratio)",
                           "ours": {"nsga2": a["mean"], "random": b["mean"]}, "holds": bool(a["mean"] > b["mean"])})
        for p in s.budget_percentiles:
            k = f"best_under_p{p:g}"
            for other in ("random", "nsga2"):
                if "aging" not in st or other not in st:
                    continue
                a, b = st["aging"][q][k]["accuracy"]["mean"], st[other][q][k]["accuracy"]["mean"]
                if a is not None and b is not None:
                    claims.append({"claim": f"{device}: aging evolution with the p{p:g} budget hard finds a more "
                                            f"accurate cell under it than {other} ({q} queries, mean over seeds)",
                                   "ours": {"aging": a, other: b}, "holds": bool(a > b)})
    return claims


def _plot(result: dict[str, Any], table) -> Any:
    """The figure: hypervolume ratios per device, one device's true front, Spearman vs training size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    devices = list(result.get("search", {}))
    cells = result.get("prediction", {}).get("latency_model", {})
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    # (a) hypervolume ratio per device
    ax = axes[0]
    q = str(max(result["settings"]["query_budgets"]))
    for i, name in enumerate(("nsga2", "random")):
        m = [result["search"][d]["strategies"].get(name, {}).get(q, {}).get("hypervolume_ratio", {}).get("mean")
             for d in devices]
        e = [result["search"][d]["strategies"].get(name, {}).get(q, {}).get("hypervolume_ratio", {}).get("se") or 0
             for d in devices]
        ax.bar(np.arange(len(devices)) + 0.4 * i - 0.2, [v or 0 for v in m], 0.4, yerr=e, label=name)
    ax.set_xticks(np.arange(len(devices)), devices, rotation=45, ha="right")
    lo = min([0.8] + [v for d in devices for n in ("nsga2", "random")
                      if (v := result["search"][d]["strategies"].get(n, {}).get(q, {})
                          .get("hypervolume_ratio", {}).get("mean")) is not None])
    ax.set_ylim(lo - 0.02, 1.0)
    ax.set_ylabel(f"hypervolume / true ({q} queries)")
    ax.legend(loc="lower left")
    ax.set_title("search: front vs the true front")
    # (b) one device's true front and one seed's found fronts
    ax = axes[1]
    if devices:
        d = devices[0]
        fp = table.front_points(DATASET, d)
        ax.step(fp[:, 1], fp[:, 0], where="post", color="k", label="true front")
        ax.scatter(table.latency_columns[d], table.accuracy_columns[DATASET], s=1, c="0.85", label="all cells")
        ax.set_ylim(max(80.0, float(fp[:, 0].min()) - 1), float(fp[:, 0].max()) + 0.5)
        for k, b in result["search"][d]["latency_budgets_ms"].items():
            ax.axvline(b, ls=":", c="0.4")
            ax.text(b, ax.get_ylim()[0] + 0.3, k, fontsize=8)
        ax.set_xlabel(f"latency on {d} (ms)")
        ax.set_ylabel("CIFAR-10 accuracy (%)")
        ax.legend(loc="lower right")
        ax.set_title(f"true front on {d}")
    # (c) Spearman vs training size, own device, with MACs and published
    ax = axes[2]
    macs = result.get("prediction", {}).get("macs_ranking", {}).get("live", {})
    sizes = result["settings"]["train_sizes"]
    for train in result["settings"]["train_devices"]:
        ys = [cells.get(f"{train}/{n}", {}).get("scored_on", {}).get(train, {}).get("spearman", {}).get("mean")
              for n in sizes]
        if any(y is not None for y in ys):
            ax.plot(sizes, [np.nan if y is None else y for y in ys], marker="o", lw=1, label=train)
    if "gold_6226" in macs:
        ax.axhline(macs["gold_6226"]["spearman"], c="k", ls="--", lw=1, label="MACs, gold_6226 (ours)")
    g = PUBLISHED["gold_6226"]
    ax.scatter([10, 900], [g["help_10_samples"], g["brp_nas_900_samples"]], marker="*", s=120, c="r", zorder=5,
               label="HELP 10 / BRP-NAS 900 (published, gold_6226)")
    ax.axhline(g["flops"], c="r", ls=":", lw=1, label="FLOPs (published, gold_6226)")
    ax.set_xscale("log")
    ax.set_xlabel("training cells")
    ax.set_ylabel("Spearman on the rest")
    ax.set_title("latency model, scored on its own device")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class Table:
    """One markdown table of the result: written beside the JSON with `suffix`, printed after `caption`."""

    suffix: str
    caption: str
    header: list[str]
    rows: list[list[Any]]
    digits: int = 3


def tables(result: dict[str, Any]) -> list[Table]:
    """The README's tables of the latest figures: the search, and (once predicted) the latency ranking and
    the transfer between devices."""
    s = result["settings"]
    q = [str(v) for v in s["query_budgets"]]

    def fmt(d: dict | None) -> str:
        if not d or d.get("mean") is None:
            return "-"
        return f"{d['mean']:.3f} ± {d['se']:.3f}" if d.get("se") is not None else f"{d['mean']:.3f}"

    header = ["device", "HV ratio NSGA-II", "HV ratio random",
              *[f"best < p{p:g} (true): aging / NSGA-II / random" for p in s["budget_percentiles"]]]
    rows: list[list[Any]] = []
    for device, sec in result.get("search", {}).items():
        st = sec["strategies"]
        row: list[Any] = [device] + [" / ".join(fmt(st.get(n, {}).get(qq, {}).get("hypervolume_ratio")) for qq in q)
                                     for n in ("nsga2", "random")]
        for p in s["budget_percentiles"]:
            k = f"p{p:g}"
            vals = []
            for n in ("aging", "nsga2", "random"):
                a = st.get(n, {}).get(q[-1], {}).get(f"best_under_{k}", {}).get("accuracy")
                vals.append("-" if not a or a["mean"] is None else f"{a['mean']:.2f}")
            row.append(f"{sec['latency_budgets_ms'][k]:.3g} ms ({sec['true_best_under_budget'][k]:.2f}): "
                       + " / ".join(vals))
        rows.append(row)
    out = [Table(".md", "Search (hypervolume ratio to the true front at " + " / ".join(q) + " queries, mean ± s.e. "
                 f"over {s['seeds']} seeds; best CIFAR-10 accuracy found under each budget at {q[-1]} queries):",
                 header, rows)]
    pred = result.get("prediction", {})
    cells = pred.get("latency_model", {})
    macs = pred.get("macs_ranking", {}).get("live", {})
    if cells or macs:
        devs = list(macs) or list(result.get("search", {}))
        rows = []
        for d in devs:
            row = [d, macs[d]["spearman"] if d in macs else None]
            for n in s["train_sizes"]:
                c = cells.get(f"{d}/{n}")
                row.append(fmt(c["scored_on"][d]["spearman"]) if c else "-")
            rows.append(row)
        out.append(Table(".prediction.md", "Latency ranking, Spearman on the cells not trained on (model: mean over "
                         "repetitions, trained and scored on the same device; transfer below):",
                         ["device", "MACs", *[f"model n={n}" for n in s["train_sizes"]]], rows))
        n_t = max((n for n in s["train_sizes"] if any(k.endswith(f"/{n}") for k in cells)), default=None)
        trained = [d for d in s["train_devices"] if f"{d}/{n_t}" in cells]
        if trained and len(devs) > 1:
            rows = [[d, *[cells[f"{d}/{n_t}"]["scored_on"][e]["spearman"]["mean"] for e in devs]] for d in trained]
            out.append(Table(".transfer.md", f"Transfer: model trained on {n_t} cells of the row's device, Spearman "
                             "on each column's device (diagonal: its own):",
                             ["trained on \\ scored on", *devs], rows, digits=2))
    return out


def write_tables(out: ResultFile, result: dict[str, Any]) -> str:
    """Each of `tables(result)` beside the JSON (`ResultFile.table`); returns them with their captions and
    the published figures, as the README shows them."""
    text: list[str] = []
    for t in tables(result):
        text += [t.caption, "", out.table(t.header, t.rows, digits=t.digits, suffix=t.suffix)]
    if result.get("prediction", {}).get("latency_model") or result.get("prediction", {}).get("macs_ranking"):
        g = PUBLISHED["gold_6226"]
        text += [f"Published (HELP, gold_6226): FLOPs {g['flops']}, layer-wise {g['layer_wise_predictor']}, "
                 f"BRP-NAS (900) {g['brp_nas_900_samples']}, HELP (10) {g['help_10_samples']}.", ""]
    return "\n".join(text)


# ---------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------
def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 devices, 3 seeds, budgets 30/60, fewer predictions")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / f"{NAME}.json",
                   help="result JSON (PNG and markdown tables beside it)")
    add_nb201_csv_argument(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    from archspace.nb201 import NB201Table

    args = _parse(argv)
    s = Settings.quick() if args.quick else Settings()
    path = nb201_table_or_skip("tabular_benchmark", args.csv)
    if path is None:
        return 2
    table = NB201Table(path)
    for d in set(s.devices) | set(s.train_devices):
        if d not in table.latency_columns:
            raise SystemExit(f"device {d!r} not in the table ({table.devices})")
    started = time.time()
    # resumes the previous file when its settings (and dataset) are this run's; else starts afresh
    out = ResultFile(NAME, args.out, s.to_json())
    if out.resumed and out.payload.get("dataset") != DATASET:
        out = ResultFile(NAME, args.out, s.to_json(), resume=False)
    result = out.payload
    spent_before = 0.0
    if out.resumed:
        spent_before = float(result.get("seconds_total", result.get("seconds_this_run", 0.0)))
        print(f"resuming {args.out}", file=sys.stderr)
    else:
        result.update({"complete": False, "dataset": DATASET, "source": {"csv": str(path), "rows": len(table)},
                       "search": {}, "prediction": {"latency_model": {}}, "export": EXPORT_PLACEHOLDER})
    result["published"] = PUBLISHED

    def save() -> None:
        result["claims"] = _claims(result, s)
        out.save()

    # Step 1. Search, one device at a time.
    for device in s.devices:
        if device in result["search"]:
            continue
        result["search"][device] = search_device(table, device, s)
        print(f"search {device}: {result['search'][device]['seconds']} s", file=sys.stderr, flush=True)
        save()
    # Step 2. MACs of the real networks, and their ranking of each device.
    pred = result["prediction"]
    if "macs_ranking" not in pred:
        t0 = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            mm = MacsModel(Path(tmp))
            rng = np.random.default_rng(s.seed)
            checks = []
            connected = [i for i in rng.permutation(len(table)) if live_edges(table.archs[i].ops)]
            for i in connected[: s.macs_checks]:
                arch = table.archs[int(i)]
                exported = int(sum(st.macs for st in MacsModel.export(arch.to_string(), Path(tmp))))
                checks.append({"arch": arch.to_string(), "formula": mm.macs(arch.ops), "exported": exported})
        live = np.array([mm.macs(a.ops) for a in table.archs], dtype=float)
        every = np.array([mm.macs_all_edges(a.ops) for a in table.archs], dtype=float)
        pred["macs"] = {**mm.to_json(), "checked_against_export": checks,
                        "min": int(live.min()), "max": int(live.max()), "seconds": round(time.time() - t0, 2)}
        pred["macs_ranking"] = {
            "live": {d: dict(zip(("spearman", "kendall"), _rank_scores(table.latency_columns[d], live)))
                     for d in table.devices},
            "all_edges": {d: dict(zip(("spearman", "kendall"), _rank_scores(table.latency_columns[d], every)))
                          for d in table.devices},
            "note": ("'live': MACs of the exported network (edges off every input-output path are dropped, a cell "
                     "without one computes a constant); 'all_edges': every non-none edge counted. No samples "
                     "needed; scored on all cells."),
        }
        save()
    # Step 3. The latency model: train on n cells of one device, score on the rest on every device.
    todo = [(d, n, r) for d in s.train_devices for n, r in zip(s.train_sizes, s.reps)
            if f"{d}/{n}" not in pred["latency_model"]]
    if todo:
        t0 = time.time()
        bank = FeatureBank(table)
        pred["features"] = {"distinct_feature_rows": len(bank.representatives),
                            "seconds": round(time.time() - t0, 2)}
        for d, n, r in todo:
            pred["latency_model"][f"{d}/{n}"] = predict_cell(table, bank, d, n, r, s)
            print(f"model {d}/{n}: {pred['latency_model'][f'{d}/{n}']['seconds']} s", file=sys.stderr, flush=True)
            save()
    result["complete"] = True
    result["seconds_this_run"] = round(time.time() - started, 1)
    # over the first run and every resume of it (a run that stopped early left no duration: counted as 0)
    result["seconds_total"] = round(spent_before + result["seconds_this_run"], 1)
    save()
    png = out.figure(_plot(result, table))
    print(write_tables(out, result))
    print(f"wrote {args.out}, {png} and the markdown tables beside them", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
