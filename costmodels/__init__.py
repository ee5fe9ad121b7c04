"""Cost models: what a candidate will cost before paying to find out.

* `ScheduleRanker`: XGBoost ranking of the schedules of one workload (explicit `ScheduleConfig`s or
  MetaSchedule traces).
* `DatabaseXGBCostModel`: MetaSchedule's cost model for the project, XGBoost pretrained on every record
  of the shared tuning database and saved as XGBoost JSON (loaded lazily: it imports TVM).
* `ArchLatencyModel`: tuned end-to-end latency of an untuned architecture, with an uncertainty
  interval (quantile objective or ensemble) and `select(candidates, k)`.
* `latency_metrics` and friends: Kendall tau, Spearman, pairwise accuracy, top-k recall, MAPE,
  share within +-10 %.
* Analytical models: energy (op-level with Horowitz 2014 constants, latency x power proxy), roofline
  (calibrated per machine). Peak memory is not modelled here: `archspace.stats.peak_memory` walks the
  liveness of the exported ONNX graph itself.

Only plain data is imported from other wings (DESIGN.md): the records of `schedules.records` and the
precision table of `archspace.precision`; XGBoost is imported by the functions that train or predict.
"""

from costmodels.arch_latency import ArchLatencyModel, ArchModelConfig, ArchPrediction, ArchSample
from costmodels.energy import HOROWITZ_2014, EnergyConstants, EnergyReport, energy_report, op_energy, proxy_energy_j
from costmodels.errors import CostModelError
from costmodels.features import (
    ARCH_FEATURES,
    CONFIG_FEATURES,
    FEATURE_VERSION,
    TRACE_FEATURES,
    WORKLOAD_FEATURES,
    arch_features,
    config_features,
    trace_features,
    workload_features,
)
from costmodels.folds import group_kfold, group_train_test_split
from costmodels.metrics import (
    kendall_tau,
    latency_metrics,
    mape,
    pairwise_accuracy,
    spearman,
    top_k_recall,
    within_pct,
)
from costmodels.ranker import RANKER_OBJECTIVES, RankerConfig, ScheduleRanker, ScheduleSample
from costmodels.roofline import Roofline, calibrate, load_or_calibrate
from costmodels.workloads import (
    conv2d_workload,
    dense_workload,
    elementwise_workload,
    layer_params,
    pool2d_workload,
)

__all__ = [
    "ARCH_FEATURES", "CONFIG_FEATURES", "FEATURE_VERSION", "TRACE_FEATURES", "WORKLOAD_FEATURES",
    "ArchLatencyModel", "ArchModelConfig", "ArchPrediction", "ArchSample",
    "CostModelError",
    "EnergyConstants", "EnergyReport", "HOROWITZ_2014", "energy_report", "op_energy", "proxy_energy_j",
    "RANKER_OBJECTIVES", "RankerConfig", "ScheduleRanker", "ScheduleSample",
    "Roofline", "calibrate", "load_or_calibrate",
    "arch_features", "config_features", "trace_features", "workload_features",
    "conv2d_workload", "dense_workload", "elementwise_workload", "layer_params", "pool2d_workload",
    "group_kfold", "group_train_test_split",
    "kendall_tau", "latency_metrics", "mape", "pairwise_accuracy", "spearman", "top_k_recall", "within_pct",
    "DatabaseXGBCostModel", "MSCostModelConfig",
]

#: Names served by modules that import TVM: loaded on first use, so `import costmodels` stays cheap.
_LAZY = {"DatabaseXGBCostModel": "costmodels.ms_cost_model", "MSCostModelConfig": "costmodels.ms_cost_model"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'costmodels' has no attribute {name!r}")
