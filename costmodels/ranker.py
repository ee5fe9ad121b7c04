"""`ScheduleRanker`: for one workload, rank candidate schedules by predicted latency.

An XGBoost model over (workload features + schedule features), trained with a ranking objective
(`rank:pairwise`, default, or `rank:ndcg`) where each workload is one query group, or with plain
regression on -log(latency). The search uses it to choose which schedules to measure.

Schedules are either `ScheduleConfig`s of the explicit space or MetaSchedule traces (the JSON pair
[instructions, decisions] of a tuning record); one model uses one kind, fixed at construction.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence, Union

import numpy as np

from costmodels.errors import CostModelError
from costmodels.features import (
    CONFIG_FEATURES,
    FEATURE_VERSION,
    TRACE_FEATURES,
    WORKLOAD_FEATURES,
    config_features,
    trace_features,
    workload_features,
)
from costmodels.persist import check_feature_names, load_model_dir, save_model_dir
from schedules.records import LayerWorkload, ScheduleConfig

__all__ = ["RankerConfig", "ScheduleSample", "ScheduleRanker", "RANKER_OBJECTIVES"]

RANKER_OBJECTIVES = ("rank:pairwise", "rank:ndcg", "reg:squarederror")
Schedule = Union[ScheduleConfig, str, list]


@dataclass(frozen=True)
class RankerConfig:
    objective: str = "rank:pairwise"
    #: "config" (explicit ScheduleConfig space) or "trace" (MetaSchedule trace summary).
    schedule_kind: str = "trace"
    n_rounds: int = 300
    max_depth: int = 6
    learning_rate: float = 0.1
    min_child_weight: float = 1.0
    subsample: float = 1.0
    colsample_bytree: float = 1.0
    #: Relevance grades per workload for the ranking objectives (the fastest gets grade_levels - 1).
    grade_levels: int = 32
    #: Boosting rounds added by `update()` on the grown training set.
    update_rounds: int = 50
    seed: int = 0
    #: XGBoost threads. One is fastest for these small sets here (2 threads: 3 to 20x slower under load).
    nthread: int = 1

    def __post_init__(self) -> None:
        if self.objective not in RANKER_OBJECTIVES:
            raise CostModelError(f"RankerConfig.objective: {self.objective!r} not in {RANKER_OBJECTIVES}")
        if self.schedule_kind not in ("config", "trace"):
            raise CostModelError(f"RankerConfig.schedule_kind: {self.schedule_kind!r} not in ('config', 'trace')")
        for name in ("n_rounds", "max_depth", "grade_levels", "update_rounds"):
            if getattr(self, name) < 1:
                raise CostModelError(f"RankerConfig.{name} must be >= 1")

    @property
    def feature_names(self) -> tuple[str, ...]:
        sched = CONFIG_FEATURES if self.schedule_kind == "config" else TRACE_FEATURES
        return WORKLOAD_FEATURES + sched


@dataclass(frozen=True)
class ScheduleSample:
    """One measured (workload, schedule) pair. `schedule` is a ScheduleConfig or a trace."""

    workload: LayerWorkload
    schedule: Any
    latency_ms: float


def _grades(latencies: np.ndarray, levels: int) -> np.ndarray:
    """Integer relevance in [0, levels-1] from the rank within a group; fastest = highest."""
    n = latencies.size
    if n == 1:
        return np.array([levels - 1], dtype=np.float64)
    order = np.argsort(latencies, kind="mergesort")
    rank = np.empty(n)
    rank[order] = np.arange(n)
    # ties share the grade of their first member
    for v in np.unique(latencies):
        m = latencies == v
        rank[m] = rank[m].min()
    return np.floor((levels - 1) * (1.0 - rank / (n - 1)) + 1e-9)


class ScheduleRanker:
    """Rank schedules of a workload. `fit` / `update` learn; `scores` / `rank` / `predict_ms` use.

    Not thread safe: one ranker per search loop.
    """

    KIND = "ScheduleRanker"

    def __init__(self, config: RankerConfig | None = None) -> None:
        self.config = config or RankerConfig()
        self._booster = None
        self._X = np.zeros((0, len(self.feature_names)))
        self._y = np.zeros(0)
        self._groups = np.zeros(0, dtype=str)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.config.feature_names

    @property
    def n_train(self) -> int:
        return int(self._y.size)

    # ---------------------------------------------------------------- features
    def _schedule_vec(self, schedule: Any, w: LayerWorkload) -> np.ndarray:
        if self.config.schedule_kind == "config":
            if not isinstance(schedule, ScheduleConfig):
                raise CostModelError(f"this ranker takes ScheduleConfig schedules, got {type(schedule).__name__}")
            return config_features(schedule, w)
        if isinstance(schedule, ScheduleConfig):
            raise CostModelError("this ranker takes MetaSchedule traces; build it with schedule_kind='config' "
                                 "for ScheduleConfig schedules")
        return trace_features(schedule)

    def featurize(self, workload: LayerWorkload, schedules: Sequence[Any]) -> np.ndarray:
        wf = workload_features(workload)
        rows = [np.concatenate([wf, self._schedule_vec(s, workload)]) for s in schedules]
        return np.vstack(rows) if rows else np.zeros((0, len(self.feature_names)))

    def _samples_to_arrays(self, samples: Sequence[ScheduleSample]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not samples:
            raise CostModelError("no training samples: measure some schedules first")
        X, lat, groups = [], [], []
        for i, s in enumerate(samples):
            ms = float(s.latency_ms)
            if not math.isfinite(ms) or ms <= 0:
                raise CostModelError(f"sample #{i} ({s.workload.name}): latency {s.latency_ms!r} is not a positive "
                                     "finite number; drop failed measurements before training")
            X.append(np.concatenate([workload_features(s.workload), self._schedule_vec(s.schedule, s.workload)]))
            lat.append(ms)
            groups.append(s.workload.structural_hash or s.workload.name)
        return np.vstack(X), np.asarray(lat), np.asarray(groups).astype(str)

    # ---------------------------------------------------------------- training
    def _params(self) -> dict[str, Any]:
        c = self.config
        p = {"objective": c.objective, "max_depth": c.max_depth, "eta": c.learning_rate,
             "min_child_weight": c.min_child_weight, "subsample": c.subsample,
             "colsample_bytree": c.colsample_bytree, "seed": c.seed, "nthread": c.nthread, "verbosity": 0}
        if c.objective == "rank:ndcg":
            # grades above 31 are allowed without exponential gain; NDCG wants its pairs from the
            # top of each list (with "mean" pairs it learned nothing here: constant scores)
            p["ndcg_exp_gain"] = False
            p["lambdarank_pair_method"] = "topk"
        elif c.objective == "rank:pairwise":
            p["lambdarank_pair_method"] = "mean"  # every position matters, not only the top
        return p

    def _dmatrix(self, X: np.ndarray, lat: np.ndarray, groups: np.ndarray):
        import xgboost as xgb

        order = np.argsort(groups, kind="mergesort")  # XGBoost wants each query's rows contiguous
        X, lat, groups = X[order], lat[order], groups[order]
        if self.config.objective.startswith("rank:"):
            _, qid = np.unique(groups, return_inverse=True)
            label = np.empty_like(lat)
            for q in np.unique(qid):
                m = qid == q
                label[m] = _grades(lat[m], self.config.grade_levels)
            return xgb.DMatrix(X, label=label, qid=qid, feature_names=list(self.feature_names))
        return xgb.DMatrix(X, label=-np.log(lat), feature_names=list(self.feature_names))

    def fit(self, samples: Sequence[ScheduleSample]) -> "ScheduleRanker":
        """Train from scratch on `samples` (each workload is one ranking group)."""
        import xgboost as xgb

        X, lat, groups = self._samples_to_arrays(samples)
        self._X, self._y, self._groups = X, lat, groups
        self._booster = xgb.train(self._params(), self._dmatrix(X, lat, groups), self.config.n_rounds)
        return self

    def update(self, samples: Sequence[ScheduleSample]) -> "ScheduleRanker":
        """Add newly measured samples and continue boosting `update_rounds` rounds on all samples seen.
        Before any `fit`, this is `fit`."""
        import xgboost as xgb

        if self._booster is None:
            return self.fit(samples)
        X, lat, groups = self._samples_to_arrays(samples)
        self._X = np.vstack([self._X, X])
        self._y = np.concatenate([self._y, lat])
        self._groups = np.concatenate([self._groups, groups])
        self._booster = xgb.train(self._params(), self._dmatrix(self._X, self._y, self._groups),
                                  self.config.update_rounds, xgb_model=self._booster)
        return self

    # ---------------------------------------------------------------- prediction
    def _require_fit(self) -> None:
        if self._booster is None:
            raise CostModelError("ScheduleRanker is not trained: call fit() or load() first")

    def scores(self, workload: LayerWorkload, schedules: Sequence[Any]) -> np.ndarray:
        """Higher score = predicted faster. Comparable within one workload only."""
        import xgboost as xgb

        self._require_fit()
        X = self.featurize(workload, schedules)
        if X.shape[0] == 0:
            return np.zeros(0)
        return self._booster.predict(xgb.DMatrix(X, feature_names=list(self.feature_names)))

    def rank(self, workload: LayerWorkload, schedules: Sequence[Any]) -> list[int]:
        """Indices of `schedules`, predicted fastest first (stable for ties)."""
        s = self.scores(workload, schedules)
        return [int(i) for i in np.argsort(-s, kind="mergesort")]

    def predict_ms(self, workload: LayerWorkload, schedules: Sequence[Any]) -> np.ndarray:
        """Predicted latency in ms; only for the regression objective (ranking scores have no unit)."""
        if self.config.objective != "reg:squarederror":
            raise CostModelError("predict_ms needs objective='reg:squarederror'; ranking objectives give scores only")
        return np.exp(-self.scores(workload, schedules))

    # ---------------------------------------------------------------- persistence
    def save(self, path, *, fmt: str = "json"):
        self._require_fit()
        return save_model_dir(path, kind=self.KIND, feature_names=self.feature_names,
                              feature_version=FEATURE_VERSION, config=dataclasses.asdict(self.config),
                              boosters=[self._booster], X=self._X, y=self._y, groups=self._groups, fmt=fmt)

    @classmethod
    def load(cls, path) -> "ScheduleRanker":
        meta = load_model_dir(path, kind=cls.KIND, feature_version=FEATURE_VERSION)
        try:
            config = RankerConfig(**meta["config"])
        except TypeError as exc:
            raise CostModelError(f"{path}: config does not match this nacos's RankerConfig ({exc})") from exc
        check_feature_names(meta, config.feature_names, str(path))
        model = cls(config)
        model._booster = meta["boosters_loaded"][0]
        model._X, model._y, model._groups = meta["X"], meta["y"], meta["groups"]
        return model
