"""The explicit space on real TensorIR: every sampled config builds and computes what the unscheduled
function computes; a whole network compiled under one global policy matches PyTorch."""

import random

import numpy as np
import pytest
import torch
from torch import nn

from archspace.export import export_module
from schedules.explicit_apply import apply_config, layer_shape_of, main_block_kind
from schedules.explicit_compile import _random_args, explicit_search, layer_key, schedule_module, time_prim_func
from schedules.explicit_space import ConfigDoesNotFit, GlobalPolicy, LayerShape, ScheduleSpace
from schedules.frontend import import_onnx
from schedules.records import ScheduleConfig
from schedules.targets import host_target


class Tiny(nn.Module):
    """conv 3x3, depthwise 5x5 stride 2 (+ReLU6), pointwise, dense: one of each kind."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 5, stride=2, padding=2, groups=8)
        self.pw = nn.Conv2d(8, 16, 1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        h = nn.functional.relu(self.conv(x))
        h = nn.functional.relu6(self.dw(h))
        h = self.pw(h)
        return self.fc(h.mean([2, 3]))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    net = Tiny().eval()
    path = export_module(net, torch.randn(1, 3, 12, 12), tmp_path_factory.mktemp("tiny") / "tiny.onnx")
    return net, path, import_onnx(path)


def _functions(mod):
    import tvm

    return {gv.name_hint: f for gv, f in mod.functions.items()
            if isinstance(f, tvm.tirx.PrimFunc) and main_block_kind(f) is not None}


def test_layer_shapes_and_keys(tiny):
    shapes = sorted((layer_shape_of(f).kind, layer_key(f)) for f in _functions(tiny[2]).values())
    assert [s[0] for s in shapes] == ["conv2d", "dense", "depthwise_conv2d", "pointwise_conv2d"]
    keys = dict(shapes)
    assert keys["conv2d"] == ("conv2d", 8, 12, 12, 3, 3)
    assert keys["depthwise_conv2d"] == ("depthwise_conv2d", 8, 6, 6, 1, 5)
    assert keys["pointwise_conv2d"] == ("pointwise_conv2d", 16, 6, 6, 8, 1)
    assert keys["dense"] == ("dense", 4, 1, 1, 16, 1)


def test_every_sampled_config_builds_and_matches(tiny):
    target = host_target()
    space = ScheduleSpace()
    rng = random.Random(0)
    checked = 0
    for name, func in _functions(tiny[2]).items():
        args = _random_args(func)
        _, expected = time_prim_func(func, target, args, number=1, repeat=1)
        for _ in range(6):
            config = space.sample(rng, layer_shape_of(func))
            _, got = time_prim_func(apply_config(func, config).mod["main"], target, args, number=1, repeat=1)
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=f"{name} {config}")
            checked += 1
    assert checked == 24


def test_a_config_that_does_not_fit_is_rejected_with_its_reason(tiny):
    func = next(f for f in _functions(tiny[2]).values() if layer_shape_of(f).kind == "depthwise_conv2d")
    with pytest.raises(ConfigDoesNotFit, match="tile_oc=16 exceeds the depthwise_conv2d axis extent 8"):
        apply_config(func, ScheduleConfig(tile_oc=16, tile_oh=1, tile_ow=1, tile_ic=1))
    with pytest.raises(ConfigDoesNotFit, match="tile_ic=4 exceeds"):
        apply_config(func, ScheduleConfig(tile_oc=8, tile_oh=1, tile_ow=2, tile_ic=4))


def test_whole_network_under_a_global_policy_matches_pytorch(tiny):
    import tvm
    from tvm import relax

    net, _, mod = tiny
    for config in (ScheduleConfig(), ScheduleConfig(tile_oc=2, tile_ow=3, tile_ic=1, vectorize="ow", loop_order="who",
                                                    inline_pad=False, fuse_epilogue=False, parallel="none", unroll=16)):
        policy = GlobalPolicy(config)
        scheduled, notes = schedule_module(mod, lambda name, key: policy.for_layer(LayerShape(*key[:5])))
        assert set(notes.values()) == {"ok"} and len(notes) == 4
        vm = relax.VirtualMachine(tvm.compile(scheduled, host_target()), tvm.cpu())
        x = np.random.default_rng(1).standard_normal((1, 3, 12, 12)).astype(np.float32)
        got = vm["main"](tvm.runtime.tensor(x)).numpy()
        with torch.no_grad():
            expected = net(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_explicit_search_keeps_the_fastest_correct_config(tiny):
    func = next(f for f in _functions(tiny[2]).values() if layer_shape_of(f).kind == "pointwise_conv2d")
    result = explicit_search(func, ScheduleSpace(), host_target(), n=6, seed=3)
    assert result.config is not None and result.ms > 0 and result.tried >= 1
    assert result.trace is not None and not result.failures
