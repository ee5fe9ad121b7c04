"""The explicit ScheduleConfig space applied to real TensorIR: every sampled config builds and the
whole network's output matches PyTorch; the explicit search commits its best into the database."""

import random

import numpy as np
import pytest
import torch

from schedules.database import TuningDatabase
from schedules.explicit.apply import apply_config, layer_shape_of, main_block_kind
from schedules.explicit.compile import schedule_module
from schedules.explicit.space import ConfigDoesNotFit, ScheduleSpace
from schedules.frontend import extract_workloads, import_onnx
from schedules.measure import Protocol, compile, measure
from schedules.records import ScheduleConfig
from schedules.tuner import explicit_tune


def _exported_with_torch_output(torch_models, path, x):
    from tests.schedules.conftest import export

    net = torch_models["a"]()
    export(net, (1, 3, 16, 16), path, seed=3)   # initialises the weights, eval mode
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def test_every_sampled_config_builds_and_matches_pytorch(torch_models, target, tmp_path):
    import tvm
    from tvm import relax

    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype("float32")
    expected = _exported_with_torch_output(torch_models, tmp_path / "a.onnx", x)
    mod = import_onnx(tmp_path / "a.onnx")
    space = ScheduleSpace()
    rng = random.Random(0)
    kinds = set()
    for trial in range(6):
        chosen = {}

        def choose(name, key):
            shape = key  # (kind, oc, oh, ow, reduction, kernel)
            from schedules.explicit.space import LayerShape

            cfg = space.sample(rng, LayerShape(*shape[:5]))
            chosen[name] = cfg
            kinds.add(shape[0])
            return cfg

        scheduled, notes = schedule_module(mod, choose)
        conv_notes = {k: v for k, v in notes.items() if v != "elementwise"}
        assert set(conv_notes.values()) == {"ok"} and len(conv_notes) == 4, notes
        ex = tvm.compile(scheduled, target=target)
        vm = relax.VirtualMachine(ex, tvm.cpu())
        out = vm["main"](tvm.runtime.tensor(x)).numpy()
        diff = float(np.abs(out - expected).max())
        assert diff <= 1e-4 * max(1.0, float(np.abs(expected).max())), (trial, chosen, diff)
    assert kinds == {"conv2d", "depthwise_conv2d", "pointwise_conv2d", "dense"}


def test_a_config_that_does_not_fit_is_refused_with_its_reason(models, target):
    import tvm

    mod = import_onnx(models["a"])
    func = next(f for _, f in mod.functions.items()
                if isinstance(f, tvm.tirx.PrimFunc) and main_block_kind(f) and layer_shape_of(f).kind == "conv2d")
    with pytest.raises(ConfigDoesNotFit, match="tile_oc=32 exceeds the conv2d axis extent 8"):
        apply_config(func, ScheduleConfig(tile_oc=32))
    with pytest.raises(ConfigDoesNotFit, match="tile_ow=3 does not divide"):
        apply_config(func, ScheduleConfig(tile_oc=8, tile_ow=3))


def test_explicit_search_tries_the_default_rule_first(models, target):
    import tvm

    from schedules.explicit.compile import explicit_search
    from schedules.explicit.space import GlobalPolicy

    mod = import_onnx(models["a"])
    for _, func in mod.functions.items():
        if not isinstance(func, tvm.tirx.PrimFunc) or main_block_kind(func) is None:
            continue
        shape = layer_shape_of(func)
        result = explicit_search(func, ScheduleSpace(), target, 1)
        assert result.tried == 1 and not result.failures
        assert result.config == GlobalPolicy(ScheduleConfig()).for_layer(shape)
        literal = explicit_search(func, ScheduleSpace(), target, 1, seed=3, adapt=False)
        assert literal.config == ScheduleSpace().sample(random.Random(3), shape)


def test_explicit_search_writes_into_the_shared_database(models, target, tmp_path):
    db = TuningDatabase(tmp_path / "db")
    mod = import_onnx(models["a"])
    report = explicit_tune(mod, db, target, configs_per_task=3, seed=1)
    assert sorted(w.op_kind for w in report.tuned) == ["conv2d", "dense", "depthwise_conv2d", "pointwise_conv2d"]
    assert report.trials >= 4
    cov = db.coverage(mod, target)
    assert cov.tasks_covered == 4 and cov.uncovered == ("mean",)
    again = explicit_tune(mod, db, target, configs_per_task=3)
    assert not again.tuned and len(again.reused) == 4
    # compile applies those records (traces replayed on the same workloads); the result passes the gate
    m = measure(compile(models["a"], db, target), Protocol(warmup=1, repeats=3))
    assert m.ok, m.error
    ws = extract_workloads(mod, target)
    assert all(db.lookup(w).run_ms > 0 for w in ws if w.op_kind != "elementwise")
