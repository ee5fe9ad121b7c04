import json

import numpy as np
import pytest

import costmodels
from costmodels import (
    ARCH_FEATURES,
    CONFIG_FEATURES,
    TRACE_FEATURES,
    WORKLOAD_FEATURES,
    CostModelError,
    arch_features,
    config_features,
    conv2d_workload,
    dense_workload,
    trace_features,
    workload_features,
)
from costmodels.datasets import read_metaschedule_db
from costmodels.workloads import check_op_kind
from schedules.records import ScheduleConfig


def test_every_vector_matches_its_names():
    conv = conv2d_workload("c", (1, 16, 32, 32), 32, 3, 1, 1)
    assert workload_features(conv).shape == (len(WORKLOAD_FEATURES),)
    assert config_features(ScheduleConfig(), conv).shape == (len(CONFIG_FEATURES),)
    assert arch_features([conv, dense_workload("fc", 1, 32, 10)]).shape == (len(ARCH_FEATURES),)
    for names in (WORKLOAD_FEATURES, CONFIG_FEATURES, TRACE_FEATURES, ARCH_FEATURES):
        assert len(set(names)) == len(names)
    assert isinstance(costmodels.FEATURE_VERSION, int)


def test_workload_features_by_hand():
    dw = conv2d_workload("dw", (2, 32, 16, 16), 32, 3, 2, 1, groups=32)
    f = dict(zip(WORKLOAD_FEATURES, workload_features(dw)))
    assert dw.op_kind == "depthwise_conv2d" and f["op_depthwise_conv2d"] == 1.0 and f["depthwise"] == 1.0
    assert f["log2_batch"] == 1.0 and f["log2_out_h"] == 3.0 and f["stride_h"] == 2.0
    assert f["arith_intensity"] == pytest.approx(dw.arithmetic_intensity)


def test_config_features_outer_extents():
    conv = conv2d_workload("c", (1, 16, 32, 32), 32, 3, 1, 1)
    f = dict(zip(CONFIG_FEATURES, config_features(ScheduleConfig(tile_oc=8, tile_ow=4, tile_ic=4), conv)))
    assert f["cfg_log2_outer_oc"] == 2.0 and f["cfg_log2_outer_ow"] == 3.0 and f["cfg_log2_outer_ic"] == 2.0


def test_arch_features_stage_aggregates_and_database_knowledge():
    a = conv2d_workload("a", (1, 3, 32, 32), 16, 3, 1, 1)
    b = conv2d_workload("b", (1, 16, 32, 32), 32, 3, 2, 1)
    fc = dense_workload("fc", 1, 32 * 16 * 16, 10)
    f = dict(zip(ARCH_FEATURES, arch_features([a, b, fc])))
    assert f["s0_n_conv"] == 1 and f["s1_n_conv"] == 1 and f["s2_n_dense"] == 1 and f["s3_n_layers"] == 0
    assert f["db_coverage_macs"] == 0.0
    known = {a.structural_hash: 0.5}
    g = dict(zip(ARCH_FEATURES, arch_features([a, b, fc], known_ms=known)))
    assert g["db_coverage_macs"] == pytest.approx(a.macs / (a.macs + b.macs + fc.macs))
    with pytest.raises(CostModelError, match="not a latency"):
        arch_features([a], known_ms={a.structural_hash: float("nan")})
    with pytest.raises(CostModelError, match="at least one layer"):
        arch_features([])


def test_unknown_op_kind_and_dtype():
    with pytest.raises(CostModelError, match="unknown op kind"):
        check_op_kind("lstm")
    bad = conv2d_workload("c", (1, 4, 8, 8), 4, 3)
    bad = type(bad)(**{**bad.to_dict(), "dtype": "complex64"})
    with pytest.raises(CostModelError, match="dtype"):
        workload_features(bad)


def test_trace_features_of_real_metaschedule_records(ms_work_dir):
    db = read_metaschedule_db(ms_work_dir)
    assert len({s.workload.structural_hash for s in db.samples}) == 2
    samples = [s for s in db.samples if s.workload.kernel == (3, 3)]
    assert len(samples) >= 8 and all(s.latency_ms > 0 for s in samples)
    X = np.vstack([trace_features(s.schedule) for s in samples])
    f = dict(zip(TRACE_FEATURES, X[0]))
    # conv2d NCHW under multi-level tiling: 4 spatial axes in 4 levels, 3 reduction axes in 2
    assert f["ms_n_spatial_axes"] == 4 and f["ms_n_reduction_axes"] == 3
    # the spatial tile levels multiply back to the output extent: log2(1 * 32 * 32 * 32) = 15
    w = samples[0].workload
    assert w.op_kind == "conv2d" and w.output_shape == (1, 32, 32, 32) and w.macs == 32 * 32 * 32 * 16 * 9
    spatial = f["ms_sp_l0"] + f["ms_sp_l1"] + f["ms_sp_l2"] + f["ms_sp_l3"]
    assert spatial == pytest.approx(np.log2(np.prod(w.output_shape)))
    assert X.std(axis=0).max() > 0  # the random sample of the space differs in its decisions
    # the same trace as a JSON string gives the same vector
    assert np.array_equal(trace_features(json.dumps(samples[0].schedule)), X[0])


@pytest.mark.parametrize("bad", ["{not json", "[1, 2, 3]", [["x"], []], [[["SamplePerfectTile"]], []]])
def test_malformed_traces(bad):
    with pytest.raises(CostModelError):
        trace_features(bad)
