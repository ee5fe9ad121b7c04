"""The explicit space on the layer kinds where it used to be pathological (real TVM builds): a
matrix-vector pointwise conv on a 1x1 map (rfactor template), pointwise convs on 4x4 and 2x2 maps
(whole rows fused into one vector), depthwise convs on small maps, a 3-channel stem and the dense
classifier. Every config tried computes what the unscheduled function computes; the fused
elementwise functions get a parallel / vectorised schedule with the same output."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from schedules.explicit.apply import apply_config, layer_shape_of, main_block_kind, template_of
from schedules.explicit.compile import _random_args, schedule_elementwise, schedule_module
from schedules.explicit.space import GlobalPolicy, ScheduleSpace
from schedules.frontend import import_onnx
from schedules.records import ScheduleConfig


class SmallMaps(nn.Module):
    """1x3x8x8 -> stem 3->16 s2 (4x4) -> pw 16->24 (4x4) -> dw s2 (2x2) -> pw 24->40 (2x2) -> dw s2 (1x1)
    -> pw 40->48 (1x1: matrix-vector) -> dense 48->10."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.pw1 = nn.Conv2d(16, 24, 1)
        self.dw1 = nn.Conv2d(24, 24, 3, stride=2, padding=1, groups=24)
        self.pw2 = nn.Conv2d(24, 40, 1)
        self.dw2 = nn.Conv2d(40, 40, 3, stride=2, padding=1, groups=40)
        self.pw3 = nn.Conv2d(40, 48, 1)
        self.fc = nn.Linear(48, 10)

    def forward(self, x):  # (N, 3, 8, 8)
        x = torch.clamp(self.stem(x), 0, 6)
        x = self.dw1(torch.relu(self.pw1(x)))
        x = self.dw2(self.pw2(x))
        x = torch.relu(self.pw3(x))
        return self.fc(x.flatten(1))


class Pooling(nn.Module):
    """Elementwise tasks big enough to schedule: max-pool and a residual add + relu at 16x16x32."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(3, 32, 3, padding=1)

    def forward(self, x):  # (N, 3, 32, 32)
        y = self.c(x)
        return torch.relu(nn.functional.max_pool2d(y, 2) + 1.0)


def _export(module: nn.Module, shape, path):
    from tests.schedules.conftest import export

    return export(module, shape, path)


@pytest.fixture(scope="module")
def functions(tmp_path_factory):
    import tvm

    path = _export(SmallMaps(), (1, 3, 8, 8), tmp_path_factory.mktemp("k") / "small_maps.onnx")
    mod = import_onnx(path)
    return {layer_shape_of(f): f for _, f in mod.functions.items()
            if isinstance(f, tvm.tirx.PrimFunc) and main_block_kind(f) is not None}


def _run(func, target, args):
    import tvm

    lib = tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), target)
    lib = lib.jit() if hasattr(lib, "jit") else lib
    lib["main"](*args)
    return args[-1].numpy().copy()


def _assert_same(func, scheduled, target, label):
    args = _random_args(func, seed=1)
    expected = _run(func, target, args)
    got = _run(scheduled, target, args)
    diff = float(np.abs(got - expected).max())
    assert diff <= 1e-4 * max(1.0, float(np.abs(expected).max())), (label, diff)


def test_the_kinds_are_all_there(functions):
    shapes = set(functions)
    kinds = {(s.kind, s.out_h) for s in shapes}
    assert {("conv2d", 4), ("pointwise_conv2d", 4), ("pointwise_conv2d", 2), ("pointwise_conv2d", 1),
            ("depthwise_conv2d", 2), ("depthwise_conv2d", 1), ("dense", 1)} <= kinds


def test_default_rule_and_samples_match_the_unscheduled_function(functions, target):
    space = ScheduleSpace()
    rng = random.Random(0)
    templates = set()
    for shape, func in sorted(functions.items(), key=lambda kv: str(kv[0])):
        configs = [GlobalPolicy(ScheduleConfig()).for_layer(shape)]
        configs += [GlobalPolicy(space.sample(rng)).for_layer(shape) for _ in range(3)]   # what the genome gets
        configs += [space.sample(rng, shape) for _ in range(2)]                            # literal samples
        for config in configs:
            templates.add(template_of(shape, config))
            _assert_same(func, apply_config(func, config).mod["main"], target, (shape, config))
    assert templates == {"rfactor", "tiled"}


def test_matvec_uses_rfactor_and_small_maps_fuse_whole_rows(functions):
    matvec = next(s for s in functions if s.kind == "pointwise_conv2d" and s.is_matvec)
    config = GlobalPolicy(ScheduleConfig()).for_layer(matvec)
    assert template_of(matvec, config) == "rfactor" and config.tile_ic == 8
    script = apply_config(functions[matvec], config).mod["main"].script()
    assert "rf" in script and "T.vectorized" in script and "T.parallel" in script
    four = next(s for s in functions if s.kind == "pointwise_conv2d" and s.out_h == 4)
    config = GlobalPolicy(ScheduleConfig()).for_layer(four)
    assert (config.tile_oh, config.tile_ow, config.vectorize) == (4, 4, "ow")
    script = apply_config(functions[four], config).mod["main"].script()
    assert "T.vectorized(16)" in script or "T.vectorized(T.int64(16))" in script


@pytest.mark.parametrize("order", ["ohw", "hwo", "who"])
def test_parallel_loop_is_never_a_loop_of_one(functions, order):
    # on a 1x1 map the rows and columns have extent 1: an "hwo" order used to make a parallel loop of one
    dw = next(s for s in functions if s.kind == "depthwise_conv2d" and s.is_matvec)
    config = GlobalPolicy(ScheduleConfig(loop_order=order)).for_layer(dw)
    script = apply_config(functions[dw], config).mod["main"].script()
    assert "T.parallel(T.int64(1))" not in script and "T.parallel(" in script


def test_elementwise_functions_get_parallel_vector_schedules(tmp_path, target):
    import tvm
    from tvm import relax

    path = _export(Pooling(), (1, 3, 32, 32), tmp_path / "pool.onnx")
    mod = import_onnx(path)
    elementwise = [f for _, f in mod.functions.items()
                   if isinstance(f, tvm.tirx.PrimFunc) and main_block_kind(f) is None]
    assert elementwise
    for func in elementwise:
        sch = schedule_elementwise(func)
        assert sch is not None
        _assert_same(func, sch.mod["main"], target, "elementwise")
    scheduled, notes = schedule_module(mod, lambda name, key: None)
    assert "elementwise" in notes.values()
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype("float32")
    outs = []
    for m in (mod, scheduled):
        with tvm.target.Target(target):
            ex = tvm.compile(m, target=target)
        outs.append(relax.VirtualMachine(ex, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy())
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-5, atol=1e-5)
