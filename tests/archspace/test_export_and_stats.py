import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from archspace import ArchSpace, ArchSpaceError, SmallCNN
from archspace.export import ARCH_METADATA_KEY, export_module, export_onnx, read_architecture
from archspace.stats import arch_summary, onnx_layer_stats, peak_memory
from archspace.supernet import build_network


def test_export_is_checked_and_matches_torch(tmp_path):
    space = ArchSpace()
    arch = space.sample(11)
    path = export_onnx(arch, tmp_path / "a.onnx", batch=2, seed=3)
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    assert model.opset_import[0].version == 17
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta[ARCH_METADATA_KEY]) == arch.to_dict()
    assert read_architecture(path) == arch
    # onnxruntime equals PyTorch (same seed -> same weights)
    torch.manual_seed(3)
    net = build_network(arch).eval()
    x = np.random.default_rng(0).standard_normal((2, 1, arch.resolution, arch.resolution)).astype(np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert got.shape == (2, 10)
    assert np.max(np.abs(got - expected)) <= 1e-4
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary left


def test_failed_check_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    import archspace.export as export

    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous content")

    def disagree(*args, **kwargs):
        raise ArchSpaceError("m.onnx: onnxruntime differs from PyTorch by 1 (> 0.0001)")

    monkeypatch.setattr(export, "_compare_with_onnxruntime", disagree)
    with pytest.raises(ArchSpaceError, match="differs"):
        export_module(SmallCNN(), torch.randn(1, 1, 28, 28), path)
    assert path.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_small_cnn_layer_figures_match_hand_computation(tmp_path):
    path = export_module(SmallCNN(), torch.randn(64, 1, 28, 28), tmp_path / "small.onnx")
    layers = [s for s in onnx_layer_stats(path) if s.macs]
    assert [s.op_type for s in layers] == ["Conv", "Conv", "Gemm"]
    assert [s.macs for s in layers] == [7_225_344, 231_211_008, 1_003_520]
    assert [s.param_bytes("fp32") for s in layers] == [640, 18_560, 62_760]
    assert [s.param_bytes("int8") for s in layers] == [160, 4_640, 15_690]
    assert layers[0].output_elements == 802_816
    assert layers[0].activation_bytes("fp16") == 802_816 * 2
    # Peak: at the second ReLU, conv2's output and the ReLU's output (64x32x28x28 each) are alive.
    assert peak_memory(path).bytes == 2 * 64 * 32 * 28 * 28 * 4
    assert peak_memory(path, "int8").bytes == 2 * 64 * 32 * 28 * 28
    with pytest.raises(ArchSpaceError, match="precision"):
        peak_memory(path, "fp8")


def test_peak_memory_liveness_on_a_branching_graph(tmp_path):
    # x -> A -> B -> C ; D = Add(A, C): A stays alive across B and C.
    def vi(name, n):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [n])
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="A"), helper.make_node("Relu", ["a"], ["b"], name="B"),
             helper.make_node("Relu", ["b"], ["c"], name="C"), helper.make_node("Add", ["a", "c"], ["d"], name="D")]
    graph = helper.make_graph(nodes, "g", [vi("x", 10)], [vi("d", 10)],
                              value_info=[vi("a", 10), vi("b", 10), vi("c", 10)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    # step A: x,a (80) ; B: a,b (80) ; C: a,b,c (120) ; D: a,c,d (120). x dies after A.
    peak = peak_memory(model)
    assert peak.bytes == 120 and peak.node == "C" and set(peak.live_tensors) == {"a", "b", "c"}


def test_arch_summary_matches_torch_hook_count():
    space = ArchSpace()
    arch = space.sample(5)
    summary = arch_summary(arch)
    net = build_network(arch).eval()
    macs = []

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            macs.append(output.numel() * module.in_channels // module.groups * module.kernel_size[0] ** 2)
        elif isinstance(module, torch.nn.Linear):
            macs.append(output.numel() * module.in_features)

    for m in net.modules():
        m.register_forward_hook(hook)
    with torch.no_grad():
        net(torch.randn(1, 1, arch.resolution, arch.resolution))
    assert summary["macs"] == sum(macs) > 0
    assert summary["params"] > 0 and summary["peak_memory_bytes"] > 0
    assert summary["param_bytes"]["fp16"] * 2 == summary["param_bytes"]["fp32"]
    # batch scales MACs and activations, not parameters
    s4 = arch_summary(arch, batch=4)
    assert s4["macs"] == 4 * summary["macs"] and s4["params"] == summary["params"]
    assert s4["peak_memory_bytes"] == 4 * summary["peak_memory_bytes"]


def test_unreadable_onnx_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(ArchSpaceError, match="bad.onnx"):
        onnx_layer_stats(bad)


def test_conv_layers_match_the_exported_graph():
    from archspace.layers import conv_layers

    space = ArchSpace()
    for seed in range(4):
        arch = space.sample(seed)
        layers = conv_layers(arch, space)
        stats = [s for s in arch_summary(arch)["layers"] if s.macs]
        assert [layer.macs for layer in layers] == [s.macs for s in stats]
        assert len({layer.slot for layer in layers}) == len(layers)
        assert layers[0].slot == "stem" and layers[-1].kind == "dense"
