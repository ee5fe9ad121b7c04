"""A latency model for a new device from a few measurements (few-shot device transfer).

Given a table of architectures with latencies measured on several devices (the NAS-Bench-201 layout:
`index`, `arch`, accuracy columns, any set of `lat_ms_<device>` columns) and K measurements of a new
(target) device, predict the target's latency of every architecture. What is learned from:

* the other devices' columns: in log latency a device is close to a linear mix of a few others
  (Spearman 0.95 to 0.98 between the GPUs and the Xeons of NAS-Bench-201);
* the cell itself: how many edges carry each operation. Log latency is close to additive in those
  counts on most devices, and that is what rescues a device unlike the others (Eyeriss, where an
  average pool costs as much as a 3x3 convolution: its best other device ranks it at 0.76, its op
  counts at 0.996 when fitted on every row).

Methods (`METHODS`; `predict_device(..., method=...)`):

* ``ridge_select`` (default): ridge regression of the target's log latency on the shots, over a small
  family of feature sets: the 1, 2, 3 or all other devices most correlated with the target *on the
  shots* (log latency), each with or without the op counts, and the op counts alone, with a few
  penalties. The (feature set, penalty) with the lowest leave-one-out error on the shots (closed form)
  is refitted on all shots and predicts every row.
* ``ridge_devices``: the same, other devices only (no cell features).
* ``rank_average``: the mean rank of the 3 devices with the highest Spearman on the shots; mapped to
  milliseconds by a straight line in log latency fitted on the shots.
* ``xgb``: XGBoost on the cell one-hot and the other devices' log latencies, trained on a sample of
  rows labelled by ``ridge_select`` (weight 1) plus the K shots (weight `xgb_shot_weight`).
* ``shots_only``: ridge on the op counts from the shots alone (no other device): the baseline of
  training on the K shots only.

Shots are drawn at random without replacement with the seed (`select_shots`): on NAS-Bench-201 that
beat a spread over the quantiles of the other devices' first principal component at K = 10 (0.961 vs
0.953 mean Spearman over the ten devices, 5 seeds, while the method was chosen), so the simpler rule
stays.

Only numpy (XGBoost for ``xgb``, imported there); the arch strings are parsed by
`costmodels.datasets.parse_nb201`.
"""

from __future__ import annotations

import csv
import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from costmodels.datasets import NB201_OPS, parse_nb201
from costmodels.errors import CostModelError

__all__ = [
    "LAT_PREFIX",
    "METHODS",
    "DeviceTable",
    "TransferConfig",
    "TransferPrediction",
    "cell_features",
    "predict_device",
    "select_shots",
]

LAT_PREFIX = "lat_ms_"
METHODS = ("ridge_select", "ridge_devices", "rank_average", "xgb", "shots_only")
#: the op counts used as cell features ("none" is what the other five edges leave)
COUNT_OPS = tuple(op for op in NB201_OPS if op != "none")


@dataclass(frozen=True)
class TransferConfig:
    """Settings of the transfer model; the defaults are what the benchmark reports."""

    #: ridge penalties tried (on standardized features; the intercept is not penalized)
    lambdas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    #: numbers of most-correlated other devices tried (plus "all" when `try_all_devices`)
    device_counts: tuple[int, ...] = (1, 2, 3)
    try_all_devices: bool = True
    #: devices averaged by ``rank_average``
    rank_devices: int = 3
    #: ``xgb``: rows labelled by ``ridge_select`` it trains on, the shots' weight, boosting settings
    xgb_pseudo_rows: int = 2000
    xgb_shot_weight: float = 50.0
    xgb_rounds: int = 80
    xgb_max_depth: int = 4
    xgb_learning_rate: float = 0.1
    nthread: int = 1

    def __post_init__(self) -> None:
        if not self.lambdas or any(not (lam > 0) for lam in self.lambdas):
            raise CostModelError(f"TransferConfig.lambdas must be positive numbers, got {self.lambdas}")
        if any(m < 1 for m in self.device_counts) or self.rank_devices < 1:
            raise CostModelError("TransferConfig.device_counts and rank_devices must be >= 1")


@dataclass(frozen=True)
class TransferPrediction:
    """The target's predicted latency of every row (ms), and what the method chose (JSON-ready)."""

    pred_ms: np.ndarray
    method: str
    chosen: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceTable:
    """Architectures (rows) x devices (columns) of measured latency in ms, with the cells' arch strings."""

    archs: tuple[str, ...]
    devices: tuple[str, ...]
    latency_ms: np.ndarray           # (n_rows, n_devices)
    path: str = ""

    def __post_init__(self) -> None:
        lat = np.asarray(self.latency_ms, dtype=np.float64)
        if lat.shape != (len(self.archs), len(self.devices)):
            raise CostModelError(f"latency_ms has shape {lat.shape}, expected ({len(self.archs)}, "
                                 f"{len(self.devices)})")
        object.__setattr__(self, "latency_ms", lat)

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> DeviceTable:
        """Read a table of the NAS-Bench-201 layout. Errors name the file, the line or the column."""
        p = Path(path)
        if not p.is_file():
            raise CostModelError(f"{p}: table not found")
        with open(p, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise CostModelError(f"{p}: empty file, expected a header with 'arch' and {LAT_PREFIX}<device>")
            if "arch" not in header:
                raise CostModelError(f"{p}: no 'arch' column (columns: {header})")
            lat_cols = [i for i, c in enumerate(header) if c.startswith(LAT_PREFIX)]
            if not lat_cols:
                raise CostModelError(f"{p}: no {LAT_PREFIX}<device> column (columns: {header})")
            a = header.index("arch")
            archs, rows = [], []
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise CostModelError(f"{p}: line {line}: {len(row)} fields, the header has {len(header)}")
                try:
                    values = [float(row[i]) for i in lat_cols]
                except ValueError as exc:
                    raise CostModelError(f"{p}: line {line}: {exc}") from None
                bad = [header[i] for i, v in zip(lat_cols, values) if not (math.isfinite(v) and v > 0)]
                if bad:
                    raise CostModelError(f"{p}: line {line}: {bad[0]} is not a positive finite latency")
                archs.append(row[a])
                rows.append(values)
        return cls(tuple(archs), tuple(header[i] for i in lat_cols),
                   np.array(rows, dtype=np.float64).reshape(len(rows), len(lat_cols)), str(p))

    def __len__(self) -> int:
        return len(self.archs)

    def column(self, device: str) -> int:
        """The column of `device` (``lat_ms_X`` or ``X``); an unknown name is refused with the choices."""
        name = device if device.startswith(LAT_PREFIX) else LAT_PREFIX + device
        if name not in self.devices:
            where = f" of {self.path}" if self.path else ""
            raise CostModelError(f"column {name!r} is not a latency column{where}; choose one of {list(self.devices)}")
        return self.devices.index(name)


def cell_features(archs: Sequence[str], kind: str = "counts") -> np.ndarray:
    """NAS-Bench-201 cells as features: ``counts`` (n, 4): edges carrying each non-`none` operation;
    ``onehot`` (n, 30): the operation of each of the 6 edges."""
    return _cell_features(tuple(archs), kind).copy()


@functools.lru_cache(maxsize=8)
def _cell_features(archs: tuple[str, ...], kind: str) -> np.ndarray:
    # cached: a benchmark asks for the same table's features once per (device, K, seed, method)
    if kind not in ("counts", "onehot"):
        raise CostModelError(f"cell_features: kind must be 'counts' or 'onehot', got {kind!r}")
    out = np.zeros((len(archs), len(COUNT_OPS) if kind == "counts" else 6 * len(NB201_OPS)))
    for r, arch in enumerate(archs):
        for e, (op, _, _) in enumerate(parse_nb201(arch)):
            if kind == "counts":
                if op != "none":
                    out[r, COUNT_OPS.index(op)] += 1.0
            else:
                out[r, e * len(NB201_OPS) + NB201_OPS.index(op)] = 1.0
    return out


# ---------------------------------------------------------------------------------------------------
# Shots and models
# ---------------------------------------------------------------------------------------------------
def select_shots(n_rows: int, k: int, seed: int) -> np.ndarray:
    """The K rows to measure on the new device: uniformly at random without replacement, by `seed`."""
    if k < 2:
        raise CostModelError(f"shots: need K >= 2 measurements of the target device, got {k}")
    if n_rows < k + 2:
        raise CostModelError(f"shots: the table has {n_rows} rows; K = {k} shots leave fewer than 2 rows to "
                             "predict and score (need at least K + 2 rows)")
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=k, replace=False))


class _Ridge:
    """Ridge on features standardized over the shots; the intercept is not penalized."""

    def __init__(self, X: np.ndarray, y: np.ndarray, lam: float) -> None:
        self.mu = X.mean(0)
        sd = X.std(0)
        self.sd = np.where(sd > 1e-12, sd, 1.0)   # a column constant on the shots gets weight 0
        Xs = (X - self.mu) / self.sd
        self.y0 = float(y.mean())
        self.w = np.linalg.solve(Xs.T @ Xs + lam * np.eye(X.shape[1]), Xs.T @ (y - self.y0))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mu) / self.sd) @ self.w + self.y0

    @staticmethod
    def loo_mse(X: np.ndarray, y: np.ndarray, lam: float) -> float:
        """Leave-one-out mean squared error in closed form (hat matrix; standardization over all shots)."""
        sd = X.std(0)
        Xs = np.hstack([(X - X.mean(0)) / np.where(sd > 1e-12, sd, 1.0), np.ones((len(y), 1))])
        pen = lam * np.eye(Xs.shape[1])
        pen[-1, -1] = 0.0
        H = Xs @ np.linalg.pinv(Xs.T @ Xs + pen) @ Xs.T
        resid = (y - H @ y) / np.maximum(1.0 - np.diag(H), 1e-6)
        return float(np.mean(resid ** 2))


def _abs_corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() < 1e-12 or b.std() < 1e-12:
        return 0.0
    return abs(float(np.corrcoef(a, b)[0, 1]))


def _rank(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x, kind="mergesort"), kind="mergesort").astype(np.float64)


def _ridge_select(Z: np.ndarray, C: np.ndarray | None, shots: np.ndarray, y: np.ndarray, names: Sequence[str],
                  cfg: TransferConfig, use_cells: tuple[bool, ...], use_devices: bool) -> tuple[np.ndarray, dict]:
    order = np.argsort([-_abs_corr(Z[shots, j], y) for j in range(Z.shape[1])], kind="stable")
    sets: list[tuple[np.ndarray, bool]] = []
    if use_devices:
        ms = sorted({min(m, Z.shape[1]) for m in cfg.device_counts} | ({Z.shape[1]} if cfg.try_all_devices else set()))
        sets += [(order[:m], cells) for m in ms for cells in use_cells if not cells or C is not None]
    if C is not None and True in use_cells:
        sets.append((order[:0], True))
    if not sets:
        raise CostModelError("no feature set to fit: give other devices or cell features")
    best: tuple[float, np.ndarray, bool, float] | None = None
    for top, cells in sets:
        X = np.hstack([Z[shots][:, top]] + ([C[shots]] if cells else []))
        for lam in cfg.lambdas:
            err = _Ridge.loo_mse(X, y, lam)
            if best is None or err < best[0] - 1e-15:
                best = (err, top, cells, lam)
    err, top, cells, lam = best
    X_all = np.hstack([Z[:, top]] + ([C] if cells else []))
    pred = _Ridge(X_all[shots], y, lam)(X_all)
    return pred, {"devices": [names[j] for j in top], "cell_features": bool(cells), "lambda": lam,
                  "loo_rmse_log": math.sqrt(err)}


def predict_device(source_ms: np.ndarray, shots: Sequence[int], shot_ms: Sequence[float], *,
                   source_names: Sequence[str] | None = None, archs: Sequence[str] | None = None,
                   method: str = "ridge_select", config: TransferConfig | None = None) -> TransferPrediction:
    """Predict the target device's latency (ms) of every row.

    `source_ms` (n_rows, n_devices): the other devices' latencies; `shots`: the rows measured on the
    target, `shot_ms` their latencies; `archs`: the rows' NAS-Bench-201 strings (cell features; without
    them only the devices are used). Fitting is in log latency, so errors are relative.
    """
    cfg = config or TransferConfig()
    if method not in METHODS:
        raise CostModelError(f"unknown transfer method {method!r}; choose one of {list(METHODS)}")
    Z = np.log(np.asarray(source_ms, dtype=np.float64))
    if Z.ndim != 2:
        raise CostModelError(f"source_ms must be (n_rows, n_devices), got shape {Z.shape}")
    n = Z.shape[0]
    shots = np.asarray(shots, dtype=np.int64)
    y_ms = np.asarray(shot_ms, dtype=np.float64)
    if shots.size < 2 or shots.size != y_ms.size:
        raise CostModelError(f"need >= 2 shots with one latency each, got {shots.size} rows and {y_ms.size} values")
    if shots.min() < 0 or shots.max() >= n or np.unique(shots).size != shots.size:
        raise CostModelError(f"shots must be distinct rows in 0..{n - 1}")
    if not (np.all(np.isfinite(y_ms)) and np.all(y_ms > 0)) or not np.all(np.isfinite(Z)):
        raise CostModelError("latencies must be positive finite numbers")
    if archs is not None and len(archs) != n:
        raise CostModelError(f"archs has {len(archs)} rows, source_ms {n}")
    names = list(source_names) if source_names is not None else [f"device{j}" for j in range(Z.shape[1])]
    y = np.log(y_ms)
    C = _cell_features(tuple(archs), "counts") if archs is not None else None
    if Z.shape[1] == 0 and method not in ("shots_only",):
        if C is None:
            raise CostModelError("no other device and no cell features to learn from")
        method = "shots_only"

    if method == "shots_only":
        if C is None:
            raise CostModelError("shots_only needs the cells (archs) to build features from")
        pred, chosen = _ridge_select(Z, C, shots, y, names, cfg, (True,), use_devices=False)
    elif method in ("ridge_select", "ridge_devices"):
        cells = (False, True) if method == "ridge_select" and C is not None else (False,)
        pred, chosen = _ridge_select(Z, C, shots, y, names, cfg, cells, use_devices=True)
    elif method == "rank_average":
        rho = [float(np.corrcoef(_rank(Z[shots, j]), _rank(y))[0, 1]) if Z[shots, j].std() > 0 else -1.0
               for j in range(Z.shape[1])]
        top = np.argsort(rho, kind="stable")[::-1][:cfg.rank_devices]
        score = np.mean([_rank(Z[:, j]) for j in top], axis=0) / max(n - 1, 1)
        line = _Ridge(score[shots, None], y, 1e-6)
        pred, chosen = line(score[:, None]), {"devices": [names[j] for j in top]}
    else:  # xgb
        import xgboost as xgb

        base, chosen = _ridge_select(Z, C, shots, y, names, cfg, (False, True) if C is not None else (False,),
                                     use_devices=True)
        rng = np.random.default_rng(int(shots.sum()))
        pool = np.setdiff1d(np.arange(n), shots)
        pseudo = rng.choice(pool, size=min(cfg.xgb_pseudo_rows, pool.size), replace=False)
        feats = np.hstack([Z] + ([_cell_features(tuple(archs), "onehot")] if archs is not None else []))
        rows = np.concatenate([pseudo, shots])
        label = np.concatenate([base[pseudo], y])
        weight = np.concatenate([np.ones(pseudo.size), np.full(shots.size, cfg.xgb_shot_weight)])
        booster = xgb.train({"max_depth": cfg.xgb_max_depth, "eta": cfg.xgb_learning_rate, "nthread": cfg.nthread,
                             "objective": "reg:squarederror", "verbosity": 0},
                            xgb.DMatrix(feats[rows], label=label, weight=weight), cfg.xgb_rounds)
        pred = booster.predict(xgb.DMatrix(feats)).astype(np.float64)
        chosen = {"teacher": chosen, "pseudo_rows": int(pseudo.size), "shot_weight": cfg.xgb_shot_weight}
    return TransferPrediction(np.exp(pred), method, chosen)
