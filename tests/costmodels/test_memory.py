"""The memory model against hand-computed figures for the seed's SmallCNN at batch 64, and against
the shapes a real PyTorch model produces."""

import pytest
import torch
from torch import nn

from costmodels import (
    MB,
    CostModelError,
    MemoryBudgets,
    OpStep,
    conv2d_workload,
    dense_workload,
    layer_params,
    memory_report,
    param_bytes,
    peak_activation,
    pool2d_workload,
    sequential_steps,
)

BATCH = 64


def small_cnn(conv2_before_pool: bool = False):
    """conv 1->16 3x3 pad 1 on 1x28x28, 2x2 maxpool, conv 16->32 3x3 pad 1, 2x2 maxpool, linear 1568->10
    (or, with conv2_before_pool, both convolutions at 28x28 and both pools after them)."""
    c1 = conv2d_workload("conv1", (BATCH, 1, 28, 28), 16, 3, 1, 1)
    if conv2_before_pool:
        c2 = conv2d_workload("conv2", (BATCH, 16, 28, 28), 32, 3, 1, 1)
        p1 = pool2d_workload("pool1", c2.output_shape, 2)
        p2 = pool2d_workload("pool2", p1.output_shape, 2)
        layers = [c1, c2, p1, p2]
    else:
        p1 = pool2d_workload("pool1", c1.output_shape, 2)
        c2 = conv2d_workload("conv2", p1.output_shape, 32, 3, 1, 1)
        p2 = pool2d_workload("pool2", c2.output_shape, 2)
        layers = [c1, p1, c2, p2]
    fc = dense_workload("classifier", BATCH, 1568, 10)
    return layers + [fc]


def test_small_cnn_figures_by_hand():
    c1, p1, c2, p2, fc = small_cnn()
    assert c1.output_shape == (64, 16, 28, 28)
    assert 64 * 16 * 28 * 28 == 802_816
    assert c1.macs == 7_225_344                       # 802,816 outputs x 9 x 1 input channel
    assert c2.output_shape == (64, 32, 14, 14)
    assert c2.macs == 64 * 32 * 14 * 14 * 16 * 9 == 57_802_752
    assert fc.macs == 1_003_520                       # 64 x 1568 x 10
    assert layer_params(c1) == 160 and layer_params(c2) == 4640 and layer_params(fc) == 15_690


def test_issue_conv2_figure_is_conv2_at_full_resolution():
    """The issue's 231,211,008 MACs for conv2 is conv 16->32 3x3 over 28x28 (before pooling): four
    times the 14x14 figure; conv1 and the classifier are the same in both layouts."""
    c1, c2, _, _, fc = small_cnn(conv2_before_pool=True)
    assert c1.macs == 7_225_344
    assert c2.macs == 231_211_008
    assert fc.macs == 1_003_520


def test_shapes_agree_with_a_real_pytorch_small_cnn():
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1568, 10))
    shapes = []
    x = torch.zeros(BATCH, 1, 28, 28)
    for m in net:
        x = m(x)
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.Linear)):
            shapes.append(tuple(x.shape))
    assert shapes == [w.output_shape for w in small_cnn()]
    assert sum(p.numel() for p in net.parameters()) == sum(layer_params(w) for w in small_cnn())


def test_param_bytes_by_precision():
    layers = small_cnn()
    assert param_bytes(layers, "fp32") == 20_490 * 4
    assert param_bytes(layers, "fp16") == 20_490 * 2
    assert param_bytes(layers, "int8") == 20_490
    assert param_bytes(1000, "fp16") == 2000
    with pytest.raises(CostModelError, match="precision"):
        param_bytes(layers, "fp8")


def test_peak_activation_of_the_chain_by_hand():
    steps, sizes, ins, outs = sequential_steps(small_cnn())
    peak = peak_activation(steps, sizes, graph_inputs=ins, graph_outputs=outs)
    # conv1 out (3,211,264 B) and pool1 out (802,816 B) are live together during pool1
    assert peak.peak_bytes == 3_211_264 + 802_816
    assert peak.peak_step == "pool1"
    assert peak.per_step == (200_704 + 3_211_264, 3_211_264 + 802_816, 802_816 + 1_605_632,
                             1_605_632 + 401_408, 401_408 + 2_560)
    steps16, sizes16, _, _ = sequential_steps(small_cnn(), "fp16")
    assert peak_activation(steps16, sizes16, graph_inputs=ins, graph_outputs=outs).peak_bytes == peak.peak_bytes // 2


def test_liveness_keeps_a_skip_connection_alive():
    steps = [OpStep("a", ("x",), ("a",)), OpStep("b", ("a",), ("b",)), OpStep("add", ("x", "b"), ("c",))]
    sizes = {"x": 10, "a": 20, "b": 30, "c": 40}
    peak = peak_activation(steps, sizes, graph_inputs=["x"], graph_outputs=["c"])
    assert peak.per_step == (30, 60, 80)
    assert peak.peak_bytes == 80 and peak.live_at_peak == ("b", "c", "x")


@pytest.mark.parametrize("steps,match", [
    ([OpStep("a", ("nope",), ("y",))], "before any step"),
    ([OpStep("a", ("x",), ("y",)), OpStep("b", ("x",), ("y",))], "produced twice"),
    ([], "at least one"),
])
def test_liveness_bad_orders(steps, match):
    with pytest.raises(CostModelError, match=match):
        peak_activation(steps, {"x": 1, "y": 1}, graph_inputs=["x"])


def test_budgets_report_and_reject():
    budgets = MemoryBudgets(memory_budgets_mb=(1.0, 4.0, 8.0), active_memory_budget_mb=4.0)
    rep = memory_report(81_960, 4_014_080, budgets)
    assert rep.total_bytes == 4_096_040
    assert rep.violations == {1.0: True, 4.0: False, 8.0: False}  # 3.906 MB
    assert not rep.rejected
    tight = memory_report(81_960, 4_014_080, MemoryBudgets((1.0,), active_memory_budget_mb=2.0))
    assert tight.rejected and "active budget 2.0 MB" in tight.reason
    assert tight.total_mb == pytest.approx(4_096_040 / MB)
    assert not memory_report(1, 1).rejected  # no budgets: nothing rejects
    with pytest.raises(CostModelError):
        MemoryBudgets((0.0,))
    with pytest.raises(CostModelError):
        MemoryBudgets(active_memory_budget_mb=float("nan"))
