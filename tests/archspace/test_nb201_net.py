import pytest
import torch

from archspace.export import export_module
from archspace.nb201_net import build_nb201_network

ALL_3X3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
EMPTY = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def test_largest_cell_has_the_published_size():
    # NATS-Bench lists 1.53 M parameters for the all-3x3 cell on CIFAR-10.
    assert sum(p.numel() for p in build_nb201_network(ALL_3X3).parameters()) == 1_531_546


@pytest.mark.parametrize("arch", [BEST, EMPTY,
                                  "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|skip_connect~1|"
                                  "skip_connect~2|"])
def test_cells_export_and_match_onnxruntime(arch, tmp_path):
    torch.manual_seed(0)
    net = build_nb201_network(arch)
    export_module(net, torch.randn(1, 3, 32, 32), tmp_path / "cell.onnx")


def test_bad_cell():
    with pytest.raises(ValueError, match="unknown NAS-Bench-201 operation 'conv'"):
        build_nb201_network(["conv"] * 6)
    with pytest.raises(ValueError, match="6 edges"):
        build_nb201_network(["none"] * 5)
