"""The zigzag backend (`nacos.backends.accelerator`): ZigZag for real on a tiny two-conv model exported
here; ms is cycles at the clock, the row's details carry energy, EDP, each layer's mapping, what was not
costed and the cache hits; ``accel://`` targets; a bad hardware file is a ConfigError naming the key.
The registry conformance suite (tests/nacos/test_backends.py) runs it as well."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("zigzag", reason="backend zigzag needs ZigZag: pip install nacos[accel]")

import torch  # noqa: E402
import yaml  # noqa: E402
from torch import nn  # noqa: E402

from costmodels.accelerator import ZigZagSettings, _zigzag_inputs  # noqa: E402
from nacos.backends import get_backend  # noqa: E402
from nacos.backends.accelerator import (  # noqa: E402
    CACHE_NAME,
    DEFAULT_CLOCK_MHZ,
    AcceleratorLatency,
    parse_accel_target,
)
from nacos.config import config_from_dict  # noqa: E402
from nacos.errors import ConfigError  # noqa: E402

FAST = ZigZagSettings(lpf_limit=4)


class TwoConvs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)

    def forward(self, x):  # (N, 3, 16, 16)
        return torch.relu(self.c2(torch.relu(self.c1(x))))


class OnlyRelu(nn.Module):
    def forward(self, x):
        return torch.relu(x) + 1.0


def _export(module: nn.Module, path: Path) -> Path:
    module.eval()
    torch.onnx.export(module, torch.randn(1, 3, 16, 16), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["output"], dynamic_axes={"input": {0: "batch"}})
    return path


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("accel_backend")
    return _export(TwoConvs(), tmp / "two.onnx"), _export(OnlyRelu(), tmp / "relu.onnx")


def test_accel_targets_are_parsed_and_bad_ones_refused():
    assert parse_accel_target("accel://eyeriss-like") == "eyeriss-like"
    assert parse_accel_target("accel:///data/my_array.yaml") == "/data/my_array.yaml"
    for bad in ("accel://", "eyeriss-like", "rpc://h:1/k"):
        with pytest.raises(ConfigError, match=r"is not accel://HARDWARE"):
            parse_accel_target(bad)


def test_latency_is_cycles_at_the_clock_and_the_row_carries_energy_edp_and_mappings(onnx_files, tmp_path):
    two, _ = onnx_files
    cache = tmp_path / "layers.jsonl"
    backend = AcceleratorLatency("eyeriss-like", cache=cache, settings=FAST)
    assert backend.clock_mhz == DEFAULT_CLOCK_MHZ == 200.0
    first = backend.latency(None, None, two)
    assert first.ok, first.reason
    d = first.details
    assert first.ms == pytest.approx(d["latency_cycles"] / 200e3)  # cycles / (200e6 / s) in ms
    assert d["energy_mj"] == pytest.approx(d["energy_pj"] * 1e-9) and d["energy_pj"] > 0
    assert d["edp"] == pytest.approx(d["energy_pj"] * d["latency_cycles"])
    assert d["layers_costed"] == 2 and [lc["name"] for lc in d["layers"]] == ["/c1/Conv", "/c2/Conv"]
    assert all(set(lc["mapping"]) == {"spatial", "temporal"} for lc in d["layers"])
    assert d["layers_not_costed"] == 2 and {n["op_type"] for n in d["not_costed"]} == {"Relu"}
    assert (d["cache_hits"], d["zigzag_calls"]) == (0, 2) and d["hardware"] == "eyeriss-like"
    # the same candidate again, and at twice the clock: every layer from the cache, half the time
    fast = AcceleratorLatency("eyeriss-like", clock_mhz=400, cache=cache, settings=FAST).latency(None, None, two)
    assert (fast.details["cache_hits"], fast.details["zigzag_calls"]) == (2, 0)
    assert fast.ms == pytest.approx(first.ms / 2) and fast.details["edp"] == d["edp"]
    # a copy sent to another process (a Dask worker) reads the same cache and maps nothing
    import pickle

    copy = pickle.loads(pickle.dumps(backend))
    again = copy.latency(None, None, two)
    assert again.ms == first.ms and (again.details["cache_hits"], again.details["zigzag_calls"]) == (2, 0)


def test_a_model_with_nothing_to_cost_fails_with_the_reason(onnx_files):
    _, relu = onnx_files
    result = AcceleratorLatency("eyeriss-like", settings=FAST).latency(None, None, relu)
    assert not result.ok and math.isnan(result.ms) and result.reason == "ZigZag costed no layer of the model"
    assert {n["op_type"] for n in result.details["not_costed"]} == {"Relu", "Add"}


def test_from_config_takes_the_accel_target_and_keeps_the_cache_beside_the_tuning_database(tmp_path):
    db = tmp_path / "cache" / "tuning-db"
    run = config_from_dict({"tuning": {"database": str(db)}})  # target llvm: the default array
    backend = get_backend("zigzag", run)
    assert backend.model.hardware == "eyeriss-like" and backend.model.cache_path == db.parent / CACHE_NAME
    # nacos.config does not take accel:// yet: a stand-in config with the two fields from_config reads
    accel = AcceleratorLatency.from_config(SimpleNamespace(target="accel://tpu-like", tuning=run.tuning))
    assert accel.model.hardware == "tpu-like"


def test_a_bad_hardware_file_is_a_config_error_naming_the_key(tmp_path):
    data = yaml.safe_load((_zigzag_inputs() / "hardware" / "tpu_like.yaml").read_text())
    del data["operational_array"]["dimensions"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"^target: hardware .*bad\.yaml: operational_array\.dimensions: "
                                          r"required field"):
        AcceleratorLatency(str(bad))
    with pytest.raises(ConfigError, match="unknown hardware 'tpu'"):
        AcceleratorLatency("tpu")
    with pytest.raises(ConfigError, match="clock_mhz: must be > 0"):
        AcceleratorLatency(clock_mhz=0)
