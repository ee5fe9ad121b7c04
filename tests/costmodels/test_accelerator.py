"""costmodels.accelerator: ZigZag run for real on tiny ONNX models (exported here with torch, legacy
exporter, opset 17), the per-layer cache across architectures and across instances, a damaged cache
line, and bad hardware files refused with the key named (exit 2 from the CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("zigzag", reason="ZigZag (zigzag-dse, Python >= 3.11) is not installed: pip install nacos[accel]")

import torch  # noqa: E402
import yaml  # noqa: E402
from torch import nn  # noqa: E402

from costmodels.accelerator import (  # noqa: E402
    HARDWARE,
    AcceleratorModel,
    LayerCache,
    ZigZagSettings,
    _zigzag_inputs,
    hardware_names,
    main,
)
from costmodels.errors import CostModelError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
#: LOMA's search kept small (4 loop prime factors): these layers map in well under a second each
FAST = ZigZagSettings(lpf_limit=4)


class NetA(nn.Module):
    """conv 3x3 (3->8) + ReLU, depthwise 3x3 (8), pointwise 1x1 (8->16) + ReLU, mean, dense 16->10."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 16, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):  # (N, 3, 16, 16)
        x = torch.relu(self.c1(x))
        x = torch.relu(self.pw(self.dw(x)))
        return self.fc(x.mean((2, 3)))


class NetB(nn.Module):
    """NetA's first conv (same shape), then a regular 3x3 conv 8->16 + ReLU, mean."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1)

    def forward(self, x):  # (N, 3, 16, 16)
        x = torch.relu(self.c1(x))
        return torch.relu(self.c2(x)).mean((2, 3))


class NetPool(nn.Module):
    """A depthwise 3x3 conv (8 channels, 16x16) and an average pool 3x3 of the same shape, then a global
    average pool: ZigZag costs both pools as the depthwise convolutions they equal."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True)
        self.gap = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):  # (N, 3, 16, 16)
        x = self.c1(x)
        return self.gap(self.pool(self.dw(x)) + x)


def _export(module: nn.Module, path: Path) -> Path:
    torch.manual_seed(0)
    module.eval()
    torch.onnx.export(module, torch.randn(1, 3, 16, 16), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("accel")
    return _export(NetA(), tmp / "a.onnx"), _export(NetB(), tmp / "b.onnx")


@pytest.fixture
def counted(monkeypatch):
    """The real ZigZag mapping search, with each call counted (by layer name)."""
    calls: list[str] = []
    real = AcceleratorModel._map_layer

    def spy(self, layer, op_type, rule=None):
        calls.append(layer.name)
        return real(self, layer, op_type, rule)

    monkeypatch.setattr(AcceleratorModel, "_map_layer", spy)
    return calls


def _bad_hardware(tmp_path: Path, name: str, drop: tuple[str, ...]) -> Path:
    data = yaml.safe_load((_zigzag_inputs() / "hardware" / "eyeriss_like.yaml").read_text())
    node = data
    for key in drop[:-1]:
        node = node[key]
    del node[drop[-1]]
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_zigzag_maps_each_conv_depthwise_and_dense_layer_and_reports_the_rest(models, tmp_path, counted):
    a, _ = models
    model = AcceleratorModel("eyeriss-like", settings=FAST, cache=tmp_path / "layers.jsonl")
    cost = model.cost(a)
    assert [lc.name for lc in cost.layers] == ["/c1/Conv", "/dw/Conv", "/pw/Conv", "/fc/Gemm"]
    assert counted == ["/c1/Conv", "/dw/Conv", "/pw/Conv", "/fc/Gemm"] and cost.zigzag_calls == 4
    assert cost.cache_hits == 0 and not any(lc.cached for lc in cost.layers)
    for lc in cost.layers:
        assert lc.energy_pj > 0 and lc.latency_cycles >= 1 and 0 < lc.mac_utilization <= 1
        assert lc.edp == pytest.approx(lc.energy_pj * lc.latency_cycles)
        # the chosen mapping, as plain JSON: per operand, the loops at each memory level
        assert json.loads(json.dumps(lc.mapping)) == lc.mapping
        assert set(lc.mapping) == {"spatial", "temporal"} and set(lc.mapping["temporal"]) == {"O", "W", "I"}
    # the depthwise conv is mapped as ZigZag's grouped conv (G = 8 groups of one channel)
    assert "G: 8" in cost.layers[1].shape_key and "C: 1" in cost.layers[1].shape_key
    # a 3x3 conv of 8 x 3 x 3 x 3 x 16 x 16 MACs needs at least MACs / array size (14 x 12) cycles
    assert cost.layers[0].latency_cycles >= 8 * 27 * 256 / (14 * 12)
    assert sorted((n.op_type, n.name) for n in cost.not_costed) == [
        ("ReduceMean", "/ReduceMean"), ("Relu", "/Relu"), ("Relu", "/Relu_1")]
    assert all("ZigZag maps only Conv" in n.reason for n in cost.not_costed)
    assert cost.energy_pj == pytest.approx(sum(lc.energy_pj for lc in cost.layers))
    assert cost.latency_cycles == pytest.approx(sum(lc.latency_cycles for lc in cost.layers))
    assert cost.edp == pytest.approx(cost.energy_pj * cost.latency_cycles)
    # a second array costs the same layers differently
    tpu = AcceleratorModel("tpu-like", settings=FAST).cost(a)
    assert [lc.shape_key for lc in tpu.layers] == [lc.shape_key for lc in cost.layers]
    assert tpu.energy_pj != pytest.approx(cost.energy_pj)


def test_a_layer_mapped_once_is_never_mapped_again(models, tmp_path, counted):
    a, b = models
    path = tmp_path / "layers.jsonl"
    first = AcceleratorModel("eyeriss-like", settings=FAST, cache=path).cost(a)
    counted.clear()
    # a second architecture sharing the first conv's shape, in a new instance reading the same file
    second = AcceleratorModel("eyeriss-like", settings=FAST, cache=path).cost(b)
    assert counted == ["/c2/Conv"]
    assert (second.cache_hits, second.zigzag_calls) == (1, 1)
    assert second.layers[0].cached and not second.layers[1].cached
    assert second.layers[0].mapping == first.layers[0].mapping
    assert second.layers[0].edp == first.layers[0].edp
    counted.clear()
    again = AcceleratorModel("eyeriss-like", settings=FAST, cache=path).cost(a)
    assert counted == [] and again.cache_hits == 4 and again.edp == first.edp
    # another search setting or another array is another key: mapped anew
    counted.clear()
    AcceleratorModel("eyeriss-like", settings=ZigZagSettings(lpf_limit=3), cache=path).cost(b)
    assert counted == ["/c1/Conv", "/c2/Conv"]
    assert len(LayerCache(path)) == 4 + 1 + 2


def test_a_damaged_cache_line_is_skipped_not_fatal(models, tmp_path, counted):
    a, b = models
    path = tmp_path / "layers.jsonl"
    AcceleratorModel("eyeriss-like", settings=FAST, cache=path).cost(b)
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    # the second record torn in half (a killed writer), and a line of garbage before it
    path.write_text(lines[0] + "\nnot json at all\n" + lines[1][: len(lines[1]) // 2])
    cache = LayerCache(path)
    assert cache.skipped == 2 and len(cache) == 1
    counted.clear()
    cost = AcceleratorModel("eyeriss-like", settings=FAST, cache=path).cost(b)
    assert counted == ["/c2/Conv"] and cost.cache_hits == 1
    # the new record went on a line of its own after the torn one: both good records load
    assert len(LayerCache(path)) == 2 and LayerCache(path).skipped == 2


def test_a_file_that_is_no_onnx_model_is_refused(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an ONNX model")
    with pytest.raises(CostModelError, match="not a readable ONNX model"):
        AcceleratorModel("eyeriss-like", settings=FAST).cost(bad)


def test_shipped_arrays_parse_and_bad_hardware_is_refused_with_the_key_named(tmp_path):
    assert set(hardware_names()) == set(HARDWARE) and "eyeriss-like" in HARDWARE and "tpu-like" in HARDWARE
    for name in hardware_names():
        assert AcceleratorModel(name).digest
    with pytest.raises(CostModelError, match=r"operational_array\.sizes: required field"):
        AcceleratorModel(_bad_hardware(tmp_path, "no_sizes.yaml", ("operational_array", "sizes")))
    with pytest.raises(CostModelError, match=r"`r_cost` of dram is missing"):
        AcceleratorModel(_bad_hardware(tmp_path, "no_cost.yaml", ("memories", "dram", "r_cost")))
    with pytest.raises(CostModelError, match=r"hardware .*: memories: required field"):
        AcceleratorModel(_bad_hardware(tmp_path, "no_memories.yaml", ("memories",)))
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(CostModelError, match="must be a YAML mapping with keys name, memories"):
        AcceleratorModel(listy)
    with pytest.raises(CostModelError, match="unknown hardware 'eyeriss': choose one of ascend-like, "):
        AcceleratorModel("eyeriss")
    with pytest.raises(CostModelError, match="no such file"):
        AcceleratorModel(tmp_path / "absent.yaml")
    with pytest.raises(CostModelError, match="lpf_limit: must be in 1..12, got 0"):
        ZigZagSettings(lpf_limit=0)


def test_the_cli_prints_the_cost_and_exits_2_on_a_bad_hardware_file(models, tmp_path, capsys):
    a, _ = models
    assert main([str(a), "--lpf-limit", "4", "--cache", str(tmp_path / "c.jsonl")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hardware"] == "eyeriss-like" and len(out["layers"]) == 4 and out["zigzag_calls"] == 4
    bad = _bad_hardware(tmp_path, "no_sizes.yaml", ("operational_array", "sizes"))
    run = subprocess.run([sys.executable, "-m", "costmodels.accelerator", str(a), "--hardware", str(bad)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "operational_array.sizes: required field" in run.stderr and run.stdout == ""


def test_average_pools_are_costed_as_the_depthwise_convolutions_they_equal(tmp_path, counted):
    import onnxruntime as ort

    from costmodels.accelerator import _fixed_shape_model, _pools_as_depthwise

    path = _export(NetPool(), tmp_path / "pool.onnx")
    cost = AcceleratorModel("eyeriss-like", settings=FAST).cost(path)
    by_name = {lc.op_type: lc for lc in cost.layers}
    assert [lc.op_type for lc in cost.layers] == ["Conv", "Conv", "AveragePool", "GlobalAveragePool"]
    # the 3x3 average pool has the depthwise conv's shape: the same ZigZag layer, one call for both
    assert by_name["AveragePool"].shape_key == cost.layers[1].shape_key
    assert by_name["AveragePool"].cached and by_name["AveragePool"].edp == cost.layers[1].edp
    gap = by_name["GlobalAveragePool"].shape_key
    assert "FX: 16, FY: 16" in gap and "G: 8" in gap and "OX: 1, OY: 1" in gap
    assert len(counted) == 3 and [n.op_type for n in cost.not_costed] == ["Add"]
    # the rewrite computes what the pools compute
    rewritten = tmp_path / "rewritten.onnx"
    rewritten.write_bytes(_pools_as_depthwise(_fixed_shape_model(path)).SerializeToString())
    x = torch.randn(1, 3, 16, 16).numpy()
    want = ort.InferenceSession(str(path)).run(None, {"input": x})[0]
    got = ort.InferenceSession(str(rewritten)).run(None, {"input": x})[0]
    assert abs(want - got).max() < 1e-5
    # switched off, the pools are not costed (and say so)
    off = AcceleratorModel("eyeriss-like", settings=ZigZagSettings(lpf_limit=4, pool_as_depthwise=False)).cost(path)
    assert sorted(n.op_type for n in off.not_costed) == ["Add", "AveragePool", "GlobalAveragePool"]
