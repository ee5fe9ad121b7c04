import pytest
import torch

from archspace import ArchSpaceError
from archspace.export import export_module
from archspace.stats import onnx_layer_stats
from archspace.zoo import PUBLISHED_PARAMS, ZOO, build_zoo_model


@pytest.mark.parametrize("name", sorted(ZOO))
def test_parameter_counts_equal_the_published_ones(name):
    model = build_zoo_model(name)
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "mnasnet"])
def test_zoo_models_export_and_match_onnxruntime(name, tmp_path):
    torch.manual_seed(0)
    model = build_zoo_model(name, num_classes=10)
    path = export_module(model, torch.randn(1, 3, 32, 32), tmp_path / f"{name}.onnx")  # checker + ORT compare
    convs = [s for s in onnx_layer_stats(path) if s.op_type == "Conv"]
    expected = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert len(convs) == expected


def test_unknown_zoo_model():
    with pytest.raises(ArchSpaceError, match="unknown network 'alexnet'"):
        build_zoo_model("alexnet")
