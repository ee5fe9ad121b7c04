"""Fixed, versioned feature vectors for the cost models.

Three families, each a function returning a float vector in the order of a fixed tuple of names:

* workload features of a `LayerWorkload` (op kind, shapes, MACs, bytes, arithmetic intensity);
* schedule features: the `ScheduleConfig` vector of the explicit space (plus the outer loop extents
  it implies for its workload), or a summary of a MetaSchedule trace's decisions (tile factors per
  tiling level, unroll, compute location, instruction counts);
* architecture features: per-stage aggregates of an architecture's layers plus totals and what the
  tuning database already knows about them.

Changing any list or computation bumps `FEATURE_VERSION`; a saved model records the names and the
version and refuses to load against others (see `costmodels.persist`).
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

import numpy as np

from costmodels.errors import CostModelError
from costmodels.workloads import DTYPE_BYTES, check_op_kind
from schedules.records import OP_KINDS, LayerWorkload, ScheduleConfig

__all__ = [
    "FEATURE_VERSION",
    "N_STAGES",
    "WORKLOAD_FEATURES",
    "CONFIG_FEATURES",
    "TRACE_FEATURES",
    "ARCH_FEATURES",
    "workload_features",
    "config_features",
    "trace_features",
    "arch_features",
    "stage_of_layers",
]

FEATURE_VERSION = 1
#: Architecture features aggregate layers into this many stages (by output resolution, largest first);
#: deeper networks fold their later stages into the last slot.
N_STAGES = 4


def _log2p(x: float) -> float:
    return math.log2(1.0 + max(0.0, float(x)))


# --------------------------------------------------------------------------------------------------
# Workload
WORKLOAD_FEATURES: tuple[str, ...] = (
    tuple(f"op_{k}" for k in OP_KINDS)
    + ("log2_batch", "log2_in_channels", "log2_out_channels", "log2_out_h", "log2_out_w",
       "kernel_h", "kernel_w", "stride_h", "stride_w", "log2_groups", "depthwise",
       "log2_macs", "log2_bytes", "arith_intensity", "log2_out_elems", "log2_count", "dtype_bytes")
)


def _dims(w: LayerWorkload) -> tuple[int, int, int, int, int]:
    """(batch, in_channels, out_channels, out_h, out_w); dense layers have out_h = out_w = 1."""
    out = tuple(int(x) for x in w.output_shape)
    inp = tuple(int(x) for x in w.input_shapes[0]) if w.input_shapes else out
    batch = out[0] if out else 1
    cin = inp[1] if len(inp) >= 2 else 1
    cout = out[1] if len(out) >= 2 else 1
    oh = out[2] if len(out) >= 3 else 1
    ow = out[3] if len(out) >= 4 else 1
    return batch, cin, cout, oh, ow


def workload_features(w: LayerWorkload) -> np.ndarray:
    check_op_kind(w.op_kind)
    batch, cin, cout, oh, ow = _dims(w)
    try:
        eb = DTYPE_BYTES[w.dtype]
    except KeyError:
        raise CostModelError(f"{w.name}: unknown dtype {w.dtype!r}") from None
    vec = [float(w.op_kind == k) for k in OP_KINDS] + [
        math.log2(max(1, batch)), math.log2(max(1, cin)), math.log2(max(1, cout)),
        math.log2(max(1, oh)), math.log2(max(1, ow)),
        float(w.kernel[0]), float(w.kernel[1]), float(w.strides[0]), float(w.strides[1]),
        math.log2(max(1, w.groups)), float(w.groups > 1 and w.groups == cin),
        _log2p(w.macs), _log2p(w.bytes), float(w.arithmetic_intensity),
        _log2p(math.prod(w.output_shape) if w.output_shape else 0), math.log2(w.count), float(eb),
    ]
    return np.asarray(vec, dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# Schedule: the project's explicit space
CONFIG_FEATURES: tuple[str, ...] = (
    tuple(f"cfg_{n}" for n in ScheduleConfig.vector_names())
    + ("cfg_log2_outer_oc", "cfg_log2_outer_oh", "cfg_log2_outer_ow", "cfg_log2_outer_ic", "cfg_log2_tile_volume")
)


def config_features(cfg: ScheduleConfig, w: LayerWorkload) -> np.ndarray:
    """The config's own vector plus the outer loop extents it leaves on this workload (how much
    parallel work and how many reduction steps remain outside the tile)."""
    if list(ScheduleConfig.vector_names()) != [n[4:] for n in CONFIG_FEATURES[: len(ScheduleConfig.vector_names())]]:
        raise CostModelError("ScheduleConfig.vector_names() changed; bump costmodels FEATURE_VERSION")
    _, cin, cout, oh, ow = _dims(w)
    cin_g = max(1, cin // max(1, w.groups))
    outer = [math.log2(max(1.0, cout / cfg.tile_oc)), math.log2(max(1.0, oh / cfg.tile_oh)),
             math.log2(max(1.0, ow / cfg.tile_ow)), math.log2(max(1.0, cin_g / cfg.tile_ic))]
    vol = math.log2(cfg.tile_oc * cfg.tile_oh * cfg.tile_ow)
    return np.asarray(list(cfg.to_vector()) + outer + [vol], dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# Schedule: a MetaSchedule trace (as stored in a JSON tuning record: [instructions, decisions])
TRACE_FEATURES: tuple[str, ...] = ((
    "ms_n_spatial_axes", "ms_n_reduction_axes",
    "ms_sp_l0", "ms_sp_l1", "ms_sp_l2", "ms_sp_l3",   # log2 product of the spatial factors per level
    "ms_rd_l0", "ms_rd_l1",                             # log2 product of the reduction factors per level
    "ms_sp_last_inner", "ms_rd_last_inner",             # log2 innermost factor of the last axis (vector lane use)
    "ms_sp_inner_max",                                   # log2 largest innermost spatial factor
    "ms_unroll", "ms_compute_loc", "ms_inlined",
    "ms_parallel_ann", "ms_vectorize_ann",
    "ms_n_insts", "ms_n_compute_at", "ms_n_reverse_compute_at", "ms_n_cache_write", "ms_n_vectorize",
    "ms_n_parallel",
    "ms_sp_l01", "ms_sp_l23",                           # outer (parallel) and inner (cache / register) tile volumes
)
+ tuple(f"ms_sp{a}_l{lv}" for a in range(4) for lv in range(4))  # per spatial axis (first 4), per level
+ tuple(f"ms_rd{a}_l{lv}" for a in range(3) for lv in range(2))  # per reduction axis (first 3), per level
)


def _load_trace(trace: Any) -> tuple[list, dict[int, Any]]:
    if isinstance(trace, str):
        try:
            trace = json.loads(trace)
        except json.JSONDecodeError as exc:
            raise CostModelError(f"malformed trace JSON: {exc}") from exc
    if not (isinstance(trace, (list, tuple)) and len(trace) == 2 and isinstance(trace[0], list)):
        raise CostModelError("a MetaSchedule trace is a JSON pair [instructions, decisions]")
    insts, decisions = trace
    try:
        dec = {int(i): v for i, v in decisions}
    except (TypeError, ValueError) as exc:
        raise CostModelError(f"malformed trace decisions: {exc}") from exc
    return insts, dec


def trace_features(trace: Any) -> np.ndarray:
    """Summarize a MetaSchedule trace's decisions into the fixed `TRACE_FEATURES`.

    Multi-level tiling samples each spatial loop into 4 factors and each reduction loop into 2
    ("SSRSRS" on CPU); the levels are aggregated over axes so that workloads of different rank share
    the same features. The unroll decision is the chosen value of the `SampleCategorical` feeding
    `meta_schedule.unroll_explicit`; the compute location is the decision of `SampleComputeLocation`.
    """
    insts, dec = _load_trace(trace)
    sp_levels = [0.0] * 4
    rd_levels = [0.0] * 2
    sp_axes = [[0.0] * 4 for _ in range(4)]
    rd_axes = [[0.0] * 2 for _ in range(3)]
    n_sp = n_rd = 0
    sp_last = rd_last = sp_inner_max = 0.0
    unroll = 0.0
    compute_loc = 0.0
    inlined = 0.0
    par_ann = vec_ann = 0.0
    counts = {"ComputeAt": 0, "ReverseComputeAt": 0, "CacheWrite": 0, "Vectorize": 0, "Parallel": 0}
    categorical_values: dict[str, float] = {}
    for idx, inst in enumerate(insts):
        if not isinstance(inst, list) or len(inst) < 4:
            raise CostModelError(f"malformed trace instruction #{idx}: {inst!r}")
        kind, inputs, attrs, outputs = inst[0], inst[1], inst[2], inst[3]
        if kind in counts:
            counts[kind] += 1
        if kind == "SamplePerfectTile" and idx in dec:
            factors = [max(1, int(f)) for f in dec[idx]]
            logs = [math.log2(f) for f in factors]
            if len(factors) == 4:
                if n_sp < 4:
                    sp_axes[n_sp] = logs
                n_sp += 1
                sp_levels = [a + b for a, b in zip(sp_levels, logs)]
                sp_last = logs[-1]
                sp_inner_max = max(sp_inner_max, logs[-1])
            elif len(factors) == 2:
                if n_rd < 3:
                    rd_axes[n_rd] = logs
                n_rd += 1
                rd_levels = [a + b for a, b in zip(rd_levels, logs)]
                rd_last = logs[-1]
        elif kind == "SampleCategorical" and idx in dec and outputs:
            choices = attrs[0] if attrs else []
            pick = int(dec[idx])
            if 0 <= pick < len(choices):
                categorical_values[outputs[0]] = float(choices[pick])
        elif kind == "SampleComputeLocation" and idx in dec:
            compute_loc = float(dec[idx])
            inlined = float(dec[idx] == -2)
        elif kind == "Annotate" and attrs:
            key = attrs[0]
            value = inputs[1] if len(inputs) > 1 else None
            if key == "meta_schedule.unroll_explicit" or key == "meta_schedule.unroll_implicit":
                unroll = categorical_values.get(value, unroll) if isinstance(value, str) else float(value or 0)
            elif key == "meta_schedule.parallel" and isinstance(value, (int, float)):
                par_ann = float(value)
            elif key == "meta_schedule.vectorize" and isinstance(value, (int, float)):
                vec_ann = float(value)
    vec = [float(n_sp), float(n_rd), *sp_levels, *rd_levels, sp_last, rd_last, sp_inner_max,
           _log2p(unroll), compute_loc, inlined, _log2p(par_ann), _log2p(vec_ann), float(len(insts)),
           float(counts["ComputeAt"]), float(counts["ReverseComputeAt"]), float(counts["CacheWrite"]),
           float(counts["Vectorize"]), float(counts["Parallel"]),
           sp_levels[0] + sp_levels[1], sp_levels[2] + sp_levels[3],
           *(v for axis in sp_axes for v in axis), *(v for axis in rd_axes for v in axis)]
    return np.asarray(vec, dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# Architecture
_STAGE_STATS = ("n_layers", "log2_macs", "log2_bytes", "n_conv", "n_dw", "n_pw", "n_dense", "n_other",
                "log2_max_channels", "mean_intensity", "macs_share")
ARCH_FEATURES: tuple[str, ...] = (
    ("arch_log2_macs", "arch_log2_bytes", "arch_n_layers", "arch_n_distinct", "arch_log2_input_hw",
     "arch_log2_batch", "arch_mean_intensity", "arch_log2_macs_per_layer",
     "db_coverage_macs", "db_log2_known_ms")
    + tuple(f"s{s}_{stat}" for s in range(N_STAGES) for stat in _STAGE_STATS)
)


def stage_of_layers(layers: Sequence[LayerWorkload]) -> list[int]:
    """Stage index per layer: the rank of its output resolution (largest first), capped at N_STAGES-1."""
    def res(w: LayerWorkload) -> int:
        _, _, _, oh, ow = _dims(w)
        return oh * ow
    sizes = sorted({res(w) for w in layers}, reverse=True)
    rank = {r: min(i, N_STAGES - 1) for i, r in enumerate(sizes)}
    return [rank[res(w)] for w in layers]


def arch_features(layers: Sequence[LayerWorkload], *, stages: Sequence[int] | None = None,
                  known_ms: Mapping[str, float] | None = None) -> np.ndarray:
    """Aggregates of an architecture's layers (each weighted by its `count`).

    `stages` assigns layers to stages explicitly (default: by output resolution). `known_ms` maps a
    workload's structural hash to its tuned latency in the database; the features then say how much
    of the network (by MACs) is already known and the sum of those known latencies.
    """
    if not layers:
        raise CostModelError("an architecture needs at least one layer to be featurized")
    for w in layers:
        check_op_kind(w.op_kind)
    stage = list(stages) if stages is not None else stage_of_layers(layers)
    if len(stage) != len(layers):
        raise CostModelError(f"stages has {len(stage)} entries for {len(layers)} layers")
    macs = np.array([w.macs * w.count for w in layers], dtype=np.float64)
    nbytes = np.array([w.bytes * w.count for w in layers], dtype=np.float64)
    total_macs, total_bytes = float(macs.sum()), float(nbytes.sum())
    n_layers = float(sum(w.count for w in layers))
    first_in = layers[0].input_shapes[0] if layers[0].input_shapes else layers[0].output_shape
    in_hw = int(first_in[2]) * int(first_in[3]) if len(first_in) >= 4 else 1
    known_macs = known_sum = 0.0
    if known_ms:
        for w, m in zip(layers, macs):
            ms = known_ms.get(w.structural_hash)
            if ms is not None:
                if not math.isfinite(ms) or ms < 0:
                    raise CostModelError(f"known_ms[{w.structural_hash!r}] = {ms} is not a latency")
                known_macs += m
                known_sum += ms * w.count
    vec = [_log2p(total_macs), _log2p(total_bytes), n_layers, float(len({w.structural_hash or w.name for w in layers})),
           math.log2(max(1, in_hw)), math.log2(max(1, layers[0].batch)),
           2.0 * total_macs / total_bytes if total_bytes else 0.0, _log2p(total_macs / n_layers),
           known_macs / total_macs if total_macs else 0.0, _log2p(known_sum * 1000.0)]
    for s in range(N_STAGES):
        idx = [i for i, st in enumerate(stage) if min(int(st), N_STAGES - 1) == s]
        if not idx:
            vec += [0.0] * len(_STAGE_STATS)
            continue
        ws = [layers[i] for i in idx]
        cnt = lambda kind: float(sum(w.count for w in ws if w.op_kind == kind))  # noqa: E731
        s_macs, s_bytes = float(macs[idx].sum()), float(nbytes[idx].sum())
        vec += [float(sum(w.count for w in ws)), _log2p(s_macs), _log2p(s_bytes), cnt("conv2d"),
                cnt("depthwise_conv2d"), cnt("pointwise_conv2d"), cnt("dense"),
                cnt("other") + cnt("elementwise"),
                math.log2(max(max(_dims(w)[2] for w in ws), 1)),
                2.0 * s_macs / s_bytes if s_bytes else 0.0, s_macs / total_macs if total_macs else 0.0]
    return np.asarray(vec, dtype=np.float64)


