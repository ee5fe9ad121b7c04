"""The project's MetaSchedule cost model: XGBoost over every record of the shared tuning database,
saved as XGBoost JSON, so that a new tuning run starts from what the earlier runs taught it.

MetaSchedule's own `XGBModel` starts empty in every run and returns random scores until it holds
100 measured samples (TVM-NOTES.md); with 16 to 64 trials a task that is most of the budget. Its
`save` / `load` pickle. `DatabaseXGBCostModel` is a `PyCostModel` (pass it as
``ms.tune_tasks(..., cost_model=model)``) that is pretrained on the records already in a
MetaSchedule JSON database, keeps learning from the candidates measured while it tunes, and is saved
as XGBoost JSON plus a metadata JSON (`costmodels.persist`, no pickle anywhere).

Features. For each candidate MetaSchedule's `PerStoreFeature` gives one 164-long vector per buffer
store of the scheduled PrimFunc (loop annotations, arithmetic counts, buffer access patterns and
reuse, arithmetic-intensity curve, allocations; already log-scaled). A candidate has 1 to ~10 stores,
so the matrix is reduced to one fixed-length row: the sum (what `XGBModel`'s pack-sum model adds up),
the mean and the max over the stores, the store count, log2 of the workload's FLOPs (the only
absolute scale hint), and the same aggregates minus those of the workload's unscheduled loop nest (a
scale-free "how this schedule departs from the naive one", which helps across workloads). A
fixed-length row lets XGBoost see interactions between stores and use standard objectives; the
pack-sum scheme cannot.

Target. Per workload, normalized throughput: the best run time of that workload over this run time
(1 for its best record, near 0 for slow ones, 0 for failed runs, ``run_secs >= 1e9``), so different
workloads share one scale, as in `XGBModel`. The regression predicts it; `predict` returns it clipped
to [0, 1] (higher = faster; MetaSchedule's evolutionary search clips scores at 0 and samples parents
in proportion to them, so the scores must be non-negative).

Before any data. A model with no samples returns the constant 1.0 for every candidate: no ranking
information, no randomness (MetaSchedule's search then falls back on its own epsilon-greedy sampling).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import tvm  # noqa: E402  (this module is loaded lazily by costmodels/__init__: only its users pay for TVM)
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.cost_model import PyCostModel
from tvm.s_tir.meta_schedule.utils import shash2hex

from costmodels.errors import CostModelError
from costmodels.metrics import pairwise_accuracy, top_k_recall
from costmodels.persist import check_feature_names, load_model_dir, save_model_dir

__all__ = ["KIND", "MS_FEATURE_VERSION", "FAILED_RUN_SECS", "MSCostModelConfig", "DatabaseXGBCostModel",
           "WorkloadRecords", "aggregate_store_features", "feature_names", "read_workload_records",
           "held_out_quality", "metaschedule_xgb_scores"]

log = logging.getLogger(__name__)

KIND = "ms-database-xgb"
#: Bumped whenever the aggregation of the per-store features changes (a saved model is then refused).
MS_FEATURE_VERSION = 1
#: MetaSchedule records a failed build or run with a run time of 1e9 s or more.
FAILED_RUN_SECS = 1e9
#: What a failed sample is stored as (finite, so the training-set digest and the arrays stay simple).
_FAILED_STORED = 1e10
AGGREGATES = ("sum", "mean", "max")
DEFAULT_MODEL_SUBDIR = "ms_cost_model"
OBJECTIVES = ("reg:squarederror", "rank:pairwise")


def _per_store_length() -> int:
    return int(ms.feature_extractor.PerStoreFeature().feature_vector_length)


def feature_names(per_store_length: int | None = None, relative: bool = True) -> list[str]:
    """Names of the aggregated row: ``sum[i]``, ``mean[i]``, ``max[i]`` of per-store feature i,
    ``n_stores`` and ``log2_flops``, then (`relative`) the same 3 L + 1 minus those of the workload's
    unscheduled loop nest (``d_sum[i]``, ..., ``d_n_stores``)."""
    n = _per_store_length() if per_store_length is None else per_store_length
    base = [f"{agg}[{i}]" for agg in AGGREGATES for i in range(n)] + ["n_stores"]
    return base + ["log2_flops"] + ([f"d_{name}" for name in base] if relative else [])


def aggregate_store_features(per_store: np.ndarray, per_store_length: int) -> np.ndarray:
    """One candidate's (n_stores, L) per-store matrix -> sum, mean and max over the stores and the
    store count (3 L + 1)."""
    f = np.asarray(per_store, dtype=np.float64).reshape(-1, per_store_length)  # (S, L)
    if f.shape[0] == 0:  # no store (nothing scheduled): an all-zero row
        agg = np.zeros(3 * per_store_length)
    else:
        agg = np.concatenate([f.sum(axis=0), f.mean(axis=0), f.max(axis=0)])
    return np.concatenate([agg, [float(f.shape[0])]])


def _median_secs(run_secs: Any) -> float:
    """Median run time of a result / record, `_FAILED_STORED` when it failed or has none."""
    secs = sorted(float(s) for s in (run_secs or []))
    if not secs or not all(math.isfinite(s) for s in secs) or secs[0] >= FAILED_RUN_SECS:
        return _FAILED_STORED
    mid = len(secs) // 2
    return secs[mid] if len(secs) % 2 else 0.5 * (secs[mid - 1] + secs[mid])


def normalized_throughput(secs: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """best run time of the sample's workload / its run time; 0 for failed samples (and for every
    sample of a workload with no successful one)."""
    secs = np.asarray(secs, dtype=np.float64)
    groups = np.asarray(groups)
    y = np.zeros_like(secs)
    ok = secs < FAILED_RUN_SECS
    for g in np.unique(groups):
        m = (groups == g) & ok
        if m.any():
            y[m] = secs[m].min() / secs[m]
    return y


@dataclass(frozen=True)
class MSCostModelConfig:
    """XGBoost settings sized for refitting after every measured batch on one thread (about 0.1 s to
    a few seconds on thousands of samples), not for squeezing out the last digit."""

    #: "reg:squarederror" (regress normalized throughput) or "rank:pairwise" (order the samples of
    #: each workload; scores are the sigmoid of the margin)
    objective: str = "reg:squarederror"
    #: add, per aggregate, the difference to the same aggregate of the workload's unscheduled loop
    #: nest (a scale-free "how this schedule departs from the naive one")
    relative_features: bool = True
    num_boost_round: int = 80
    #: rounds added on top of the current booster by an `update` that does not refit from scratch
    update_rounds: int = 8
    #: refit from scratch once the samples grew by this fraction since the last full fit (or the
    #: booster holds twice `num_boost_round` trees); in between, `update_rounds` more rounds
    refit_growth: float = 0.2
    max_bin: int = 64
    max_depth: int = 6
    eta: float = 0.15
    min_child_weight: float = 1.0
    subsample: float = 0.9
    colsample_bytree: float = 0.6
    nthread: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise CostModelError(f"Unknown objective: {self.objective!r}; expected one of {OBJECTIVES}")
        if self.num_boost_round < 1:
            raise CostModelError(f"num_boost_round must be >= 1, got {self.num_boost_round}")

    @property
    def ranking(self) -> bool:
        return self.objective.startswith("rank:")

    def xgb_params(self) -> dict[str, Any]:
        return {"objective": self.objective, "tree_method": "hist", "max_depth": self.max_depth,
                "eta": self.eta, "min_child_weight": self.min_child_weight, "subsample": self.subsample,
                "colsample_bytree": self.colsample_bytree, "max_bin": self.max_bin, "nthread": self.nthread,
                "seed": self.seed,
                "verbosity": 0}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MSCostModelConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise CostModelError(f"unknown MSCostModelConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)


@dataclass
class WorkloadRecords:
    """The measured records of one workload, ready for both cost models: the tuning context, the
    candidates (the records' traces applied to the workload), their median run seconds (failed:
    1e10) and runner results, and our aggregated feature rows (n, 3 L + 2)."""

    key: str
    context: Any
    candidates: list[Any]
    secs: np.ndarray
    results: list[Any]
    features: np.ndarray

    @property
    def ok(self) -> np.ndarray:
        return self.secs < FAILED_RUN_SECS


class _Featurizer:
    """Per-store features of candidates, aggregated; per workload (by hash) its log2 FLOPs and the
    aggregated features of its unscheduled loop nest, cached."""

    def __init__(self, relative: bool = True) -> None:
        self.extractor = ms.feature_extractor.PerStoreFeature()
        self.per_store_length = int(self.extractor.feature_vector_length)
        self.relative = relative
        self._workload: dict[str, tuple[float, np.ndarray]] = {}

    @property
    def width(self) -> int:
        base = 3 * self.per_store_length + 1
        return 2 * base + 1 if self.relative else base + 1

    def _aggregate(self, context: Any, candidates: Sequence[Any]) -> np.ndarray:
        per_store = self.extractor.extract_from(context, list(candidates))
        return np.stack([aggregate_store_features(t.numpy(), self.per_store_length) for t in per_store])

    def workload_terms(self, key: str, context: Any) -> tuple[float, np.ndarray]:
        if key not in self._workload:
            try:
                flops = float(tvm.s_tir.analysis.estimate_tir_flops(context.mod))
            except Exception:  # a PrimFunc the estimator cannot walk: no scale hint
                flops = 0.0
            naive = np.zeros(3 * self.per_store_length + 1)
            if self.relative:
                from tvm.s_tir import Schedule

                sch = Schedule(context.mod)
                cand = ms.MeasureCandidate(sch, ms.arg_info.ArgInfo.from_entry_func(context.mod))
                naive = self._aggregate(context, [cand])[0]
            self._workload[key] = (math.log2(1.0 + max(flops, 0.0)), naive)
        return self._workload[key]

    def rows(self, context: Any, candidates: Sequence[Any], key: str | None = None) -> np.ndarray:
        if not candidates:
            return np.zeros((0, self.width))
        key = key or shash2hex(context.mod)
        log2_flops, naive = self.workload_terms(key, context)
        agg = self._aggregate(context, candidates)  # (n, 3 L + 1)
        parts = [agg, np.full((agg.shape[0], 1), log2_flops)]
        if self.relative:
            parts.append(agg - naive)
        return np.concatenate(parts, axis=1)


def _open_database(database: Any) -> Any:
    """A MetaSchedule database from a directory holding database_workload.json and
    database_tuning_record.json (the layout of `schedules.database.TuningDatabase`), or as given."""
    if isinstance(database, (str, os.PathLike)):
        root = Path(database)
        wl, rec = root / "database_workload.json", root / "database_tuning_record.json"
        for p in (wl, rec):
            if not p.is_file():
                raise CostModelError(f"{root}: not a MetaSchedule JSON database (missing {p.name})")
        return ms.database.JSONDatabase(path_workload=str(wl), path_tuning_record=str(rec), allow_missing=False,
                                        module_equality="structural")
    if not isinstance(database, ms.database.Database):
        raise CostModelError(f"expected a database directory or a MetaSchedule Database, got {type(database).__name__}")
    return database


def read_workload_records(databases: Any, target: Any = None, *,
                          featurizer: _Featurizer | None = None) -> list[WorkloadRecords]:
    """Every tuning record of one or more MetaSchedule databases (directories or open `Database`s),
    grouped by workload (structural hash; the same workload in two databases is one group). Each
    record's own target is used for its features, `target` when it has none. Given `target`, records
    measured on another target (kind or mcpu) are skipped: their run times say nothing about this
    machine. A record whose trace no longer applies to its workload is skipped. Skips are logged."""
    if isinstance(databases, (str, os.PathLike)) or isinstance(databases, ms.database.Database):
        databases = [databases]
    fz = featurizer or _Featurizer()
    if isinstance(target, (str, dict)):
        target = tvm.target.Target(target)
    grouped: dict[str, tuple[Any, Any, list]] = {}
    other_target = 0
    for database in databases:
        for rec in _open_database(database).get_all_tuning_records():
            key = shash2hex(rec.workload.mod)
            if target is not None and rec.target is not None and _machine(rec.target) != _machine(target):
                other_target += 1
                continue
            tgt = rec.target if rec.target is not None else target
            if tgt is None:
                raise CostModelError(f"record of workload {key} names no target; pass target=")
            grouped.setdefault(key, (rec.workload.mod, tgt, []))[2].append(rec)
    out = []
    skipped = 0
    for key, (mod, tgt, recs) in grouped.items():
        context = ms.TuneContext(mod=mod, target=tgt)
        cands, secs, results = [], [], []
        for rec in recs:
            try:
                cands.append(rec.as_measure_candidate())
            except Exception as exc:  # a trace from another TVM that no longer replays: data, not a crash
                skipped += 1
                log.debug("workload %s: record skipped (%s)", key, exc)
                continue
            secs.append(_median_secs(rec.run_secs))
            results.append(ms.runner.RunnerResult(run_secs=rec.run_secs, error_msg=None))
        if cands:
            out.append(WorkloadRecords(key, context, cands, np.asarray(secs), results, fz.rows(context, cands, key)))
    if skipped:
        log.warning("%d tuning records did not replay on this TVM and were skipped", skipped)
    if other_target:
        log.warning("%d tuning records measured on another target than %s were skipped", other_target,
                    _machine(target))
    return out


def _machine(target: Any) -> tuple[str, str]:
    return str(target.kind.name), str(target.attrs.get("mcpu", ""))


def _fingerprint(db_dir: str | os.PathLike | None) -> dict[str, int] | None:
    """Size and mtime of a database directory's record file: a saved model trained on it is stale
    when these differ (another run appended records)."""
    if db_dir is None:
        return None
    p = Path(db_dir) / "database_tuning_record.json"
    if not p.is_file():
        return None
    st = p.stat()
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


@derived_object
class DatabaseXGBCostModel(PyCostModel):
    """XGBoost cost model for MetaSchedule that carries across runs (see the module docstring).

    >>> model = DatabaseXGBCostModel.for_tuning("runs/tuning", target)   # load or pretrain
    >>> ms.tune_tasks(..., cost_model=model)        # or schedules.tuner.tune(..., cost_model=model)
    >>> model.save()                                                     # back to runs/tuning/ms_cost_model

    `update` adds the measured candidates of one task and boosts a few more rounds on every sample
    held, or refits from scratch once the samples grew by a fifth (`MSCostModelConfig`, one
    thread); `predict` returns normalized throughput
    in [0, 1], higher = faster. Not thread safe: MetaSchedule calls it from one thread.
    """

    def __init__(self, config: MSCostModelConfig = MSCostModelConfig()) -> None:
        super().__init__()
        self.config = config
        self._fz = _Featurizer(config.relative_features)
        self.names = feature_names(self._fz.per_store_length, config.relative_features)
        self.X = np.zeros((0, len(self.names)))
        self.secs = np.zeros(0)
        self.groups = np.zeros(0, dtype=str)
        self.booster: Any = None
        self._full_fit_size = 0
        self.db_dir: Path | None = None
        self.model_dir: Path | None = None
        #: where the samples came from: "empty", "database" (pretrained) or "saved" (loaded)
        self.origin = "empty"
        self.saved_fingerprint: dict[str, int] | None = None

    # -- data -----------------------------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        return int(self.secs.size)

    @property
    def workloads(self) -> list[str]:
        return sorted(set(self.groups.tolist()))

    def add_samples(self, X: np.ndarray, secs: np.ndarray, groups: Sequence[str], *, refit: bool = True,
                    full: bool = True) -> None:
        X = np.asarray(X, dtype=np.float64).reshape(-1, len(self.names))
        secs = np.asarray(secs, dtype=np.float64).ravel()
        groups = np.asarray(list(groups)).astype(str)
        if not (X.shape[0] == secs.size == groups.size):
            raise CostModelError(f"features, run times and workloads differ in length: {X.shape[0]}, {secs.size}, "
                                 f"{groups.size}")
        self.X = np.concatenate([self.X, X])
        self.secs = np.concatenate([self.secs, secs])
        self.groups = np.concatenate([self.groups.astype(str), groups])
        if refit:
            self.fit(full=full)

    def add_records(self, records: Iterable[WorkloadRecords], *, refit: bool = True) -> None:
        for r in records:
            self.add_samples(r.features, r.secs, [r.key] * r.secs.size, refit=False)
        if refit:
            self.fit()

    def fit(self, *, full: bool = True) -> None:
        """Train on every sample held. `full`: a fresh booster of `num_boost_round` rounds (the
        targets of a workload move whenever a faster schedule of it arrives, so old trees fit old
        targets). Otherwise (what `update` asks for) `update_rounds` more rounds on top of the
        current booster, unless the samples grew by `refit_growth` since the last full fit: a
        measured batch costs a fraction of a refit on a large pretrained set."""
        import xgboost as xgb

        if self.n_samples == 0:
            self.booster = None
            return
        cfg = self.config
        grown = self.n_samples - self._full_fit_size >= cfg.refit_growth * self._full_fit_size
        too_many_trees = self.booster is not None and \
            self.booster.num_boosted_rounds() >= 2 * cfg.num_boost_round
        full = full or self.booster is None or grown or too_many_trees
        y = normalized_throughput(self.secs, self.groups)
        if cfg.ranking:  # XGBoost wants the rows of a query contiguous
            _, qid = np.unique(self.groups, return_inverse=True)
            order = np.argsort(qid, kind="stable")
            dtrain = xgb.DMatrix(self.X[order], label=y[order], qid=qid[order])
        else:
            dtrain = xgb.DMatrix(self.X, label=y)
        if full:
            self.booster = xgb.train(cfg.xgb_params(), dtrain, num_boost_round=cfg.num_boost_round)
            self._full_fit_size = self.n_samples
        else:
            self.booster = xgb.train(cfg.xgb_params(), dtrain, num_boost_round=cfg.update_rounds,
                                     xgb_model=self.booster)

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Predicted normalized throughput of feature rows, in [0, 1]; 1.0 everywhere without data."""
        import xgboost as xgb

        X = np.asarray(X, dtype=np.float64).reshape(-1, len(self.names))
        if self.booster is None:
            return np.ones(X.shape[0], dtype=np.float64)
        raw = self.booster.predict(xgb.DMatrix(X)).astype(np.float64)
        if self.config.ranking:
            return 1.0 / (1.0 + np.exp(-np.clip(raw, -50.0, 50.0)))
        return np.clip(raw, 0.0, 1.0)

    # -- the PyCostModel contract -----------------------------------------------------------------
    def update(self, context: Any, candidates: list[Any], results: list[Any]) -> None:
        if len(candidates) != len(results):
            raise CostModelError(f"{len(candidates)} candidates but {len(results)} results")
        if not candidates:
            return
        key = shash2hex(context.mod)
        secs = [_median_secs(r.run_secs) if not r.error_msg else _FAILED_STORED for r in results]
        self.add_samples(self._fz.rows(context, candidates, key), secs, [key] * len(secs), full=False)

    def predict(self, context: Any, candidates: list[Any]) -> np.ndarray:
        if self.booster is None or not candidates:
            return np.ones(len(candidates), dtype=np.float64)
        return self.scores(self._fz.rows(context, candidates))

    def save(self, path: str | os.PathLike | None = None) -> None:
        """Write the model to directory `path` (default: the `model_dir` of `for_tuning`): the booster
        as XGBoost JSON (booster_0.json), the samples (train.npz, read back without pickle) and
        meta.json (feature names and length, tvm / xgboost versions, samples, workloads seen, the
        database fingerprint)."""
        out = Path(path) if path is not None else self.model_dir
        if out is None:
            raise CostModelError("save(): no directory given and the model was not made by for_tuning()")
        if self.booster is None:
            raise CostModelError("save(): the model holds no samples yet; pretrain or update it first")
        save_model_dir(out, kind=KIND, feature_names=self.names, feature_version=MS_FEATURE_VERSION,
                       config=asdict(self.config), boosters=[self.booster], X=self.X, y=self.secs,
                       groups=self.groups, extra={
                           "tvm": tvm.__version__, "per_store_length": self._fz.per_store_length,
                           "aggregates": list(AGGREGATES), "target": "normalized throughput per workload",
                           "n_samples": self.n_samples, "workloads": self.workloads,
                           "database": str(self.db_dir) if self.db_dir else None,
                           "database_fingerprint": _fingerprint(self.db_dir)})

    def load(self, path: str | os.PathLike) -> None:
        """Read a model saved by `save` into this one, checking kind, format and feature versions,
        feature names, the per-store feature length of this TVM and the training-set digest;
        raises `CostModelError` saying which differs. Nothing is unpickled."""
        meta = load_model_dir(path, kind=KIND, feature_version=MS_FEATURE_VERSION)
        extra = meta.get("extra") or {}
        if extra.get("per_store_length") != self._fz.per_store_length:
            raise CostModelError(f"{path}: saved with per-store features of length {extra.get('per_store_length')}, "
                                 f"this TVM ({tvm.__version__}) extracts {self._fz.per_store_length}; "
                                 "retrain the model")
        try:
            config = MSCostModelConfig.from_dict(dict(meta.get("config") or {}))
        except (TypeError, CostModelError) as exc:
            raise CostModelError(f"{path}: unusable config in meta.json ({exc})") from exc
        names = feature_names(self._fz.per_store_length, config.relative_features)
        check_feature_names(meta, names, str(path))
        if extra.get("tvm") != tvm.__version__:
            log.warning("%s: saved under tvm %s, running tvm %s; features may differ", path, extra.get("tvm"),
                        tvm.__version__)
        if config.relative_features != self._fz.relative:
            self._fz = _Featurizer(config.relative_features)
        self.config, self.names = config, names
        self.X, self.secs, self.groups = meta["X"], meta["y"], meta["groups"].astype(str)
        self.booster = meta["boosters_loaded"][0]
        self._full_fit_size = self.n_samples
        self.saved_fingerprint = extra.get("database_fingerprint")
        self.origin = "saved"

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def from_saved(cls, path: str | os.PathLike) -> "DatabaseXGBCostModel":
        model = cls()
        model.load(path)
        return model

    @classmethod
    def from_database(cls, database: Any, target: Any = None, *,
                      config: MSCostModelConfig = MSCostModelConfig()) -> "DatabaseXGBCostModel":
        """Pretrained on every record of a MetaSchedule JSON database (directory or open
        `Database`); `target` serves records that name none."""
        model = cls(config)
        model.add_records(read_workload_records(database, target, featurizer=model._fz))
        model.origin = "database"
        if isinstance(database, (str, os.PathLike)):
            model.db_dir = Path(database)
        return model

    @classmethod
    def for_tuning(cls, db_dir: str | os.PathLike, target: Any = None, model_dir: str | os.PathLike | None = None, *,
                   config: MSCostModelConfig = MSCostModelConfig()) -> "DatabaseXGBCostModel":
        """The model to tune with over database `db_dir`: the one saved in `model_dir` (default
        ``db_dir/ms_cost_model``) when it is valid and the database has not changed since it was
        saved, else pretrained afresh on the database (an empty or missing database gives an empty
        model). Call `save()` after tuning to keep what it learnt."""
        db_dir = Path(db_dir)
        model_dir = Path(model_dir) if model_dir is not None else db_dir / DEFAULT_MODEL_SUBDIR
        model = None
        if (model_dir / "meta.json").is_file():
            try:
                loaded = cls.from_saved(model_dir)
                if loaded.saved_fingerprint == _fingerprint(db_dir):
                    model = loaded
                else:
                    log.info("%s: database changed since the model was saved; pretraining again", db_dir)
            except CostModelError as exc:
                log.warning("%s: saved model not usable (%s); pretraining from %s", model_dir, exc, db_dir)
        if model is None:
            has_records = (db_dir / "database_tuning_record.json").is_file() and \
                (db_dir / "database_workload.json").is_file()
            model = cls.from_database(db_dir, target, config=config) if has_records else cls(config)
        model.db_dir, model.model_dir = db_dir, model_dir
        return model


def _save_from_python(self: Any, path: str | os.PathLike | None = None) -> None:
    self._inst.save(path)


def _load_from_python(self: Any, path: str | os.PathLike) -> None:
    self._inst.load(path)


# `derived_object` leaves `save` / `load` to TVM's CostModel, which sends them through the FFI: only a
# str passes there, and `save()` with no argument does not. Python callers get the Python methods
# (paths, the default directory); MetaSchedule's C++ side still reaches them through the FFI.
_save_from_python.__doc__ = DatabaseXGBCostModel._cls.save.__doc__
_load_from_python.__doc__ = DatabaseXGBCostModel._cls.load.__doc__
DatabaseXGBCostModel.save = _save_from_python
DatabaseXGBCostModel.load = _load_from_python


# --------------------------------------------------------------------------------------------------
# Quality on workloads never trained on
def metaschedule_xgb_scores(train: Sequence[WorkloadRecords], test: WorkloadRecords) -> np.ndarray:
    """Scores of MetaSchedule's own `XGBModel` (configured as `schedules.tuner.TuneSettings` does:
    one thread, hist, early stopping after 20 rounds; no random warm-up, retrained on every update)
    fed the training workloads' records through its `update`, on the test workload's candidates."""
    model = ms.cost_model.XGBModel(
        config=ms.cost_model.xgb_model.XGBConfig(nthread=1, tree_method="hist"), early_stopping_rounds=20,
        num_warmup_samples=0, adaptive_training=False, verbose_eval=0)
    for r in train:
        model.update(r.context, r.candidates, r.results)
    return np.asarray(model.predict(test.context, test.candidates), dtype=np.float64)


def _ranking_metrics(secs: np.ndarray, scores: np.ndarray, k: int) -> dict[str, float]:
    # lower run time is better; higher score = predicted faster, so rank by -score
    return {f"top{k}_recall": top_k_recall(secs, -scores, k), "pairwise_accuracy": pairwise_accuracy(secs, -scores)}


@dataclass
class QualityReport:
    n_workloads: int
    n_records: int
    ours: dict[str, float]
    metaschedule_xgb: dict[str, float] | None
    per_workload: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _subset(r: WorkloadRecords, idx: np.ndarray) -> WorkloadRecords:
    return WorkloadRecords(r.key, r.context, [r.candidates[i] for i in idx], r.secs[idx],
                           [r.results[i] for i in idx], r.features[idx])


def held_out_quality(records: Sequence[WorkloadRecords], *, k: int = 5, config: MSCostModelConfig = MSCostModelConfig(),
                     compare_metaschedule: bool = True, min_records: int = 6, warm: int = 0,
                     seed: int = 0) -> QualityReport:
    """Leave-one-workload-out: for each workload with at least `min_records` successful records,
    train on every record of the other workloads and rank its successful records; top-k recall (of
    its k truly fastest, how many are in the model's k best) and pairwise ordering accuracy are
    averaged over the held-out workloads, for this model and, beside it, MetaSchedule's `XGBModel`
    trained on the same records.

    `warm` > 0 also trains both models on that many (random, fixed `seed`) records of the held-out
    workload and ranks only its other records: the situation inside a tuning run, where the model
    has measured the first batches of the task it ranks. `warm=0` is the cold, cross-workload figure."""
    records = list(records)
    if len(records) < 2:
        raise CostModelError(f"need records of at least 2 workloads to hold one out, got {len(records)}")
    rng = np.random.default_rng(seed)
    per_wl: dict[str, dict[str, Any]] = {}
    for i, held in enumerate(records):
        train = [r for j, r in enumerate(records) if j != i]
        test = held
        if warm > 0:
            order = rng.permutation(held.secs.size)
            train = train + [_subset(held, np.sort(order[:warm]))]
            test = _subset(held, np.sort(order[warm:]))
        ok = test.ok
        if ok.sum() < max(min_records, 2):
            continue
        model = DatabaseXGBCostModel(config)
        model.add_records(train)
        secs = test.secs[ok]
        row: dict[str, Any] = {"n": int(ok.sum()), "ours": _ranking_metrics(secs, model.scores(test.features[ok]), k)}
        if compare_metaschedule:
            ms_scores = metaschedule_xgb_scores(train, test)
            row["metaschedule_xgb"] = _ranking_metrics(secs, ms_scores[ok], k)
        per_wl[held.key] = row
    if not per_wl:
        raise CostModelError(f"no workload has {min_records} successful records to evaluate on")

    def mean(who: str) -> dict[str, float]:
        keys = per_wl[next(iter(per_wl))][who].keys()
        return {m: float(np.mean([v[who][m] for v in per_wl.values()])) for m in keys}

    return QualityReport(len(per_wl), int(sum(r.secs.size for r in records)), mean("ours"),
                         mean("metaschedule_xgb") if compare_metaschedule else None, per_wl)
