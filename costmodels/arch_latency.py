"""`ArchLatencyModel`: the tuned end-to-end latency of an architecture not yet tuned, with uncertainty.

Features are the per-stage aggregates of the architecture's layers plus what the tuning database
already knows (`costmodels.features.arch_features`); the target is log(latency in ms), so errors are
relative. Uncertainty comes from one of:

* `uncertainty="quantile"` (default): one XGBoost booster with the multi-quantile objective
  (`reg:quantileerror`, alphas 0.1 / 0.5 / 0.9): the median is the prediction, the outer quantiles the
  interval;
* `uncertainty="ensemble"`: N boosters on bootstrap-like row subsamples with different seeds; the
  mean is the prediction and mean -/+ 1.2816 sd the 80 % interval.

`select(candidates, k)` picks what to measure next: low predicted latency, wide uncertainty, and
spread in feature space (greedy max-min distance).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from costmodels.errors import CostModelError
from costmodels.features import ARCH_FEATURES, FEATURE_VERSION, arch_features
from costmodels.persist import check_feature_names, load_model_dir, save_model_dir
from schedules.records import LayerWorkload, Measurement

__all__ = ["ArchModelConfig", "ArchSample", "ArchPrediction", "ArchLatencyModel"]

_Z80 = 1.2815515655446004  # standard normal 0.9 quantile


@dataclass(frozen=True)
class ArchModelConfig:
    uncertainty: str = "quantile"
    quantiles: tuple[float, float, float] = (0.1, 0.5, 0.9)
    n_ensemble: int = 5
    n_rounds: int = 400
    max_depth: int = 6
    learning_rate: float = 0.05
    min_child_weight: float = 1.0
    subsample: float = 0.8
    colsample_bytree: float = 0.9
    update_rounds: int = 50
    seed: int = 0
    #: XGBoost threads. One is fastest for these small sets here (2 threads: 3 to 20x slower under load).
    nthread: int = 1

    def __post_init__(self) -> None:
        if self.uncertainty not in ("quantile", "ensemble"):
            raise CostModelError(f"ArchModelConfig.uncertainty: {self.uncertainty!r} not in ('quantile', 'ensemble')")
        q = tuple(self.quantiles)
        if len(q) != 3 or not (0.0 < q[0] < q[1] < q[2] < 1.0):
            raise CostModelError(f"ArchModelConfig.quantiles must be 3 increasing values in (0, 1), got {q}")
        if self.uncertainty == "ensemble" and self.n_ensemble < 2:
            raise CostModelError("ArchModelConfig.n_ensemble must be >= 2 for an ensemble")
        for name in ("n_rounds", "max_depth", "update_rounds"):
            if getattr(self, name) < 1:
                raise CostModelError(f"ArchModelConfig.{name} must be >= 1")


@dataclass(frozen=True)
class ArchSample:
    """An architecture as its layers, with its measured tuned latency (None when not measured)."""

    layers: tuple[LayerWorkload, ...]
    latency_ms: float | None = None
    arch_id: str = ""
    #: Optional explicit stage index per layer (default: by output resolution).
    stages: tuple[int, ...] | None = None

    @classmethod
    def from_measurement(cls, layers: Sequence[LayerWorkload], measurement: Measurement,
                         arch_id: str = "") -> "ArchSample":
        """A training sample from a `Measurement` (its median); a failed measurement is refused with
        its recorded error, so it cannot enter training as a latency."""
        if not measurement.ok:
            raise CostModelError(f"{arch_id or 'architecture'}: measurement failed ({measurement.error}); "
                                 "it is not a latency to train on")
        return cls(tuple(layers), float(measurement.median_ms), arch_id)


@dataclass(frozen=True)
class ArchPrediction:
    """Per candidate: the prediction and the lower / upper end of its interval, in ms."""

    median_ms: np.ndarray
    low_ms: np.ndarray
    high_ms: np.ndarray

    @property
    def rel_width(self) -> np.ndarray:
        """log(high / low): the uncertainty in relative terms."""
        return np.log(self.high_ms) - np.log(self.low_ms)


class ArchLatencyModel:
    """Predict tuned end-to-end latency of architectures. Not thread safe."""

    KIND = "ArchLatencyModel"
    feature_names = ARCH_FEATURES

    def __init__(self, config: ArchModelConfig | None = None) -> None:
        self.config = config or ArchModelConfig()
        self._boosters: list[Any] = []
        self._X = np.zeros((0, len(self.feature_names)))
        self._y = np.zeros(0)
        self._groups = np.zeros(0, dtype=str)

    @property
    def n_train(self) -> int:
        return int(self._y.size)

    # ---------------------------------------------------------------- features
    def featurize(self, candidates: Sequence[ArchSample | Sequence[LayerWorkload]],
                  known_ms: Mapping[str, float] | None = None) -> np.ndarray:
        rows = []
        for c in candidates:
            if isinstance(c, ArchSample):
                rows.append(arch_features(c.layers, stages=c.stages, known_ms=known_ms))
            else:
                rows.append(arch_features(list(c), known_ms=known_ms))
        return np.vstack(rows) if rows else np.zeros((0, len(self.feature_names)))

    def _arrays(self, samples: Sequence[ArchSample], known_ms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not samples:
            raise CostModelError("no training samples: measure some architectures first")
        lat = []
        for i, s in enumerate(samples):
            ms = s.latency_ms
            if ms is None or not math.isfinite(float(ms)) or float(ms) <= 0:
                raise CostModelError(f"sample #{i} ({s.arch_id or 'unnamed'}): latency {ms!r} is not a positive "
                                     "finite number; drop failed measurements before training")
            lat.append(float(ms))
        X = self.featurize(samples, known_ms)
        groups = np.asarray([s.arch_id or f"row{i}" for i, s in enumerate(samples)]).astype(str)
        return X, np.log(np.asarray(lat)), groups

    # ---------------------------------------------------------------- training
    def _params(self, seed_offset: int = 0) -> dict[str, Any]:
        c = self.config
        p = {"max_depth": c.max_depth, "eta": c.learning_rate, "min_child_weight": c.min_child_weight,
             "subsample": c.subsample, "colsample_bytree": c.colsample_bytree, "seed": c.seed + seed_offset,
             "nthread": c.nthread, "verbosity": 0, "tree_method": "hist"}
        if c.uncertainty == "quantile":
            p["objective"] = "reg:quantileerror"
            p["quantile_alpha"] = np.asarray(c.quantiles, dtype=np.float64)
        else:
            p["objective"] = "reg:squarederror"
        return p

    def _train(self, rounds: int, warm: bool) -> None:
        import xgboost as xgb

        d = xgb.DMatrix(self._X, label=self._y, feature_names=list(self.feature_names))
        n = 1 if self.config.uncertainty == "quantile" else self.config.n_ensemble
        self._boosters = [
            xgb.train(self._params(i), d, rounds, xgb_model=(self._boosters[i] if warm else None))
            for i in range(n)
        ]

    def fit(self, samples: Sequence[ArchSample], *, known_ms: Mapping[str, float] | None = None) -> "ArchLatencyModel":
        """Train from scratch. `known_ms`: structural hash -> tuned ms of workloads in the database."""
        self._X, self._y, self._groups = self._arrays(samples, known_ms)
        self._train(self.config.n_rounds, warm=False)
        return self

    def update(self, samples: Sequence[ArchSample], *,
               known_ms: Mapping[str, float] | None = None) -> "ArchLatencyModel":
        """Add newly measured architectures and continue boosting `update_rounds` rounds on everything
        seen so far (before any fit, this is fit)."""
        if not self._boosters:
            return self.fit(samples, known_ms=known_ms)
        X, y, g = self._arrays(samples, known_ms)
        self._X, self._y = np.vstack([self._X, X]), np.concatenate([self._y, y])
        self._groups = np.concatenate([self._groups, g])
        self._train(self.config.update_rounds, warm=True)
        return self

    # ---------------------------------------------------------------- prediction
    def predict_interval(self, candidates: Sequence[ArchSample | Sequence[LayerWorkload]], *,
                         known_ms: Mapping[str, float] | None = None) -> ArchPrediction:
        import xgboost as xgb

        if not self._boosters:
            raise CostModelError("ArchLatencyModel is not trained: call fit() or load() first")
        X = self.featurize(candidates, known_ms)
        if X.shape[0] == 0:
            z = np.zeros(0)
            return ArchPrediction(z, z, z)
        d = xgb.DMatrix(X, feature_names=list(self.feature_names))
        if self.config.uncertainty == "quantile":
            q = np.asarray(self._boosters[0].predict(d)).reshape(X.shape[0], -1)
            q = np.sort(q, axis=1)  # quantile crossing: keep low <= median <= high
            lo, mid, hi = q[:, 0], q[:, 1], q[:, 2]
        else:
            preds = np.vstack([b.predict(d) for b in self._boosters])
            mid, sd = preds.mean(axis=0), preds.std(axis=0, ddof=1)
            lo, hi = mid - _Z80 * sd, mid + _Z80 * sd
        return ArchPrediction(np.exp(mid), np.exp(lo), np.exp(hi))

    def predict(self, candidates, *, known_ms: Mapping[str, float] | None = None) -> np.ndarray:
        """Predicted tuned latency in ms, one per candidate."""
        return self.predict_interval(candidates, known_ms=known_ms).median_ms

    def select(self, candidates: Sequence[ArchSample | Sequence[LayerWorkload]], k: int, *,
               known_ms: Mapping[str, float] | None = None, kappa: float = 1.0,
               diversity: float = 0.5) -> list[int]:
        """Indices of the k candidates to measure next, in pick order.

        Score = -log(predicted ms) + kappa * log(high / low) (optimistic: fast or uncertain), both
        scaled to [0, 1] over the candidates; then a greedy pick adds `diversity` times the distance
        (in standardized feature space, scaled to [0, 1]) to the nearest candidate already picked.
        kappa = diversity = 0 is "the k predicted fastest".
        """
        if k < 1:
            raise CostModelError(f"k must be >= 1, got {k}")
        if kappa < 0 or diversity < 0:
            raise CostModelError("kappa and diversity must be >= 0")
        n = len(candidates)
        if n == 0:
            return []
        k = min(k, n)
        pred = self.predict_interval(candidates, known_ms=known_ms)

        def unit(v: np.ndarray) -> np.ndarray:
            span = float(v.max() - v.min())
            return (v - v.min()) / span if span > 0 else np.zeros_like(v)

        value = unit(-np.log(pred.median_ms)) + kappa * unit(pred.rel_width)
        X = self.featurize(candidates, known_ms)
        sd = X.std(axis=0)
        Z = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        picked: list[int] = []
        min_dist = np.full(n, np.inf)
        for _ in range(k):
            if picked and diversity > 0:
                finite = np.where(np.isinf(min_dist), 0.0, min_dist)
                bonus = diversity * (finite / finite.max() if finite.max() > 0 else finite)
            else:
                bonus = np.zeros(n)
            score = value + bonus
            score[picked] = -np.inf
            i = int(np.argmax(score))  # first maximum: stable
            picked.append(i)
            min_dist = np.minimum(min_dist, np.linalg.norm(Z - Z[i], axis=1))
        return picked

    # ---------------------------------------------------------------- persistence
    def save(self, path, *, fmt: str = "json"):
        if not self._boosters:
            raise CostModelError("ArchLatencyModel is not trained: nothing to save")
        cfg = dataclasses.asdict(self.config)
        cfg["quantiles"] = list(cfg["quantiles"])
        return save_model_dir(path, kind=self.KIND, feature_names=self.feature_names,
                              feature_version=FEATURE_VERSION, config=cfg, boosters=self._boosters,
                              X=self._X, y=self._y, groups=self._groups, fmt=fmt)

    @classmethod
    def load(cls, path) -> "ArchLatencyModel":
        meta = load_model_dir(path, kind=cls.KIND, feature_version=FEATURE_VERSION)
        cfg = dict(meta["config"])
        cfg["quantiles"] = tuple(cfg.get("quantiles", (0.1, 0.5, 0.9)))
        try:
            config = ArchModelConfig(**cfg)
        except TypeError as exc:
            raise CostModelError(f"{path}: config does not match this nacos's ArchModelConfig ({exc})") from exc
        check_feature_names(meta, cls.feature_names, str(path))
        expected = 1 if config.uncertainty == "quantile" else config.n_ensemble
        if len(meta["boosters_loaded"]) != expected:
            raise CostModelError(f"{path}: {len(meta['boosters_loaded'])} boosters, config implies {expected}")
        model = cls(config)
        model._boosters = meta["boosters_loaded"]
        model._X, model._y, model._groups = meta["X"], meta["y"], meta["groups"]
        return model
