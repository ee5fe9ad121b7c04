"""Per-layer table (`schedules.per_layer`): onnxruntime's profiler nodes beside TVM's kernels, each
profiled in a real child process; the order pairing on hand-made profiles. No timing thresholds."""

import pytest

from schedules.measure import Protocol
from schedules.per_layer import format_table, layer_table, per_layer_table

P = Protocol(warmup=1, repeats=3)


def test_per_layer_table_pairs_the_convolutions_and_the_classifier(models):
    # net_a: conv 3x3 (+BN +ReLU), depthwise 3x3, pointwise 1x1 (+ReLU), global mean, dense
    rows = per_layer_table(models["a"], None, None, P, 2)
    paired, other, total = rows[:-2], rows[-2], rows[-1]
    assert [r["layer"].split()[1] for r in paired] == ["conv", "conv", "conv", "dense"]
    assert [r["output_shape"] for r in paired] == [[1, 8, 16, 16], [1, 8, 16, 16], [1, 16, 16, 16], [1, 10]]
    for r in paired:
        assert r["shape_match"] and r["onnxruntime_node"] and r["tvm_kernel"]
        assert r["onnxruntime_us"] > 0 and r["tvm_us"] > 0
        assert r["ratio"] == pytest.approx(r["tvm_us"] / r["onnxruntime_us"])
    assert other["layer"].startswith("other (") and total["layer"].startswith("total")
    assert total["tvm_us"] == pytest.approx(sum(r["tvm_us"] for r in paired) + other["tvm_us"])
    assert total["onnxruntime_us"] == pytest.approx(sum(r["onnxruntime_us"] for r in paired) + other["onnxruntime_us"])
    text = format_table(rows).splitlines()
    assert text[0].split() == ["layer", "onnxruntime", "us", "TVM", "us", "TVM/ort"] and len(text) == len(rows) + 2


def test_layer_table_shows_an_unpaired_kernel_and_a_shape_mismatch():
    ort = [{"name": "c1", "op": "Conv", "output_shape": [1, 16, 8, 8, 8], "us": 10.0},   # NCHWc, 8 padded to 16
           {"name": "r", "op": "ReorderOutput", "output_shape": [1, 8, 8, 8], "us": 2.0},
           {"name": "fc", "op": "Gemm", "output_shape": [1, 10], "us": 4.0}]
    tvm = [{"name": "fused_conv2d_add_relu", "op": "", "output_shape": [1, 8, 8, 8], "us": 5.0},
           {"name": "fused_conv2d1_add1", "op": "", "output_shape": [1, 8, 4, 4], "us": 3.0},
           {"name": "fused_mean", "op": "", "output_shape": [1, 8], "us": 1.0},
           {"name": "fused_matmul_add", "op": "", "output_shape": [1, 10], "us": 2.0}]
    rows = layer_table(ort, tvm)
    assert [r["layer"] for r in rows[:3]] == ["0 conv 1x8x8x8", "1 conv 1x8x4x4", "2 dense 1x10"]
    assert rows[0]["shape_match"] and rows[0]["ratio"] == 0.5
    assert not rows[1]["shape_match"] and rows[1]["onnxruntime_node"] == "fc"  # one conv fewer on the left
    assert rows[2]["onnxruntime_us"] is None and rows[2]["ratio"] is None and not rows[2]["shape_match"]
    assert rows[3]["onnxruntime_us"] == 2.0 and rows[3]["tvm_us"] == 1.0
    assert rows[4]["onnxruntime_us"] == 16.0 and rows[4]["tvm_us"] == 11.0
    assert "shapes differ" in format_table(rows)
