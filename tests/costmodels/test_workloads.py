"""The workload records of `costmodels.workloads` against hand-computed figures for the seed's SmallCNN
at batch 64, and against the shapes and parameter count of the real PyTorch model."""

import torch
from torch import nn

from costmodels import conv2d_workload, dense_workload, layer_params, pool2d_workload

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
