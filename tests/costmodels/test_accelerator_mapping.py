"""Fixed mapping rules on ZigZag (`costmodels.accelerator_mapping`): the ordering a rule makes is a
complete temporal mapping in the documented order, and ZigZag really runs it (one temporal mapping per
spatial one instead of LOMA's search), cached apart from the searched mapping."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest

pytest.importorskip("zigzag")

from costmodels.accelerator import AcceleratorModel, ZigZagSettings  # noqa: E402
from costmodels.accelerator_mapping import MappingRule  # noqa: E402
from costmodels.errors import CostModelError  # noqa: E402
from schedules.records import ScheduleConfig  # noqa: E402

FAST = ZigZagSettings(lpf_limit=4)


@pytest.fixture(scope="module")
def accel_model(tmp_path_factory):
    """conv 3x3 16->32 on 16x16, depthwise 3x3 (32), pointwise 32->16: shapes where the mapping matters."""
    import torch
    from torch import nn

    module = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.Conv2d(32, 32, 3, padding=1, groups=32),
                           nn.Conv2d(32, 16, 1)).eval()
    path = tmp_path_factory.mktemp("accel-rules") / "m.onnx"
    torch.onnx.export(module, torch.randn(1, 16, 16, 16), str(path), dynamo=False, opset_version=17)
    return path


def _sizes(ordering):
    out: dict[str, int] = defaultdict(lambda: 1)
    for dim, factor in ordering:
        out[dim] *= factor
    return dict(out)


def test_the_ordering_is_complete_window_first_then_inner_tiles_then_the_rest():
    loops = {"K": 32, "C": 12, "OY": 14, "OX": 14, "FX": 3, "FY": 3, "B": 2}
    rule = MappingRule("ohw", tile_k=8, tile_oy=1, tile_ox=4, tile_c=5)
    ordering = rule.ordering(loops)
    assert _sizes(ordering) == loops                      # complete: every loop, whole
    assert all(f > 1 and all(f % p for p in range(2, int(math.isqrt(f)) + 1)) for _, f in ordering)  # primes
    dims = [d for d, _ in ordering]
    assert dims[0] == "FX" and dims[1] == "FY" and dims[-1] == "B"
    # inner tiles: C (12 -> 4, the largest divisor <= 5), then OX (14 -> 2), OY (1), K (8); then the rest
    inner = ordering[2:2 + 2 + 1 + 3]
    assert inner == [("C", 2), ("C", 2), ("OX", 2), ("K", 2), ("K", 2), ("K", 2)]
    rest = [d for d, _ in ordering[2 + 6:-1]]
    assert rest == ["C", "OX", "OY", "OY", "K", "K"]      # C 3, OX 7, OY 2x7, K 2x2
    # another loop order puts the output axes the other way round
    assert [d for d, _ in MappingRule("who", 1, 1, 1, 1).ordering({"K": 2, "OY": 2, "OX": 2})] == ["K", "OY", "OX"]


def test_rules_come_from_schedule_configs_and_bad_ones_are_refused():
    cfg = ScheduleConfig(tile_oc=16, tile_oh=2, tile_ow=7, tile_ic=8, loop_order="hwo")
    assert MappingRule.from_schedule_config(cfg) == MappingRule("hwo", 16, 2, 7, 8)
    assert MappingRule.from_schedule_config(ScheduleConfig()) == MappingRule()
    with pytest.raises(CostModelError, match="loop_order"):
        MappingRule("xyz")
    with pytest.raises(CostModelError, match="tile_c"):
        MappingRule(tile_c=0)


def test_zigzag_runs_the_fixed_rule_per_layer_and_caches_it_apart(tmp_path, accel_model):
    model = accel_model
    acc = AcceleratorModel("eyeriss-like", settings=FAST, cache=tmp_path / "layers.jsonl")
    searched = acc.cost(model)
    fixed = acc.cost(model, MappingRule())
    assert fixed.zigzag_calls == len(fixed.layers) and fixed.cache_hits == 0   # not the searched records
    bad = acc.cost(model, MappingRule("who", tile_k=1, tile_oy=1, tile_ox=1, tile_c=1))
    assert [lc.name for lc in bad.layers] == [lc.name for lc in searched.layers]
    # the rule moves the cost: some layer's EDP differs between the two fixed rules
    assert any(a.edp != pytest.approx(b.edp) for a, b in zip(fixed.layers, bad.layers))
    # each layer under the rule carries ZigZag's temporal mapping of it; a rerun maps nothing
    again = acc.cost(model, MappingRule())
    assert again.zigzag_calls == 0 and again.cache_hits == len(fixed.layers)
    assert [lc.edp for lc in again.layers] == pytest.approx([lc.edp for lc in fixed.layers])
    # one layer named with its own rule: only that layer is mapped anew
    first = fixed.layers[0].name
    mixed = acc.cost(model, MappingRule(), layer_rules={first: MappingRule("who", 1, 1, 1, 1)})
    assert mixed.zigzag_calls == 0   # that (layer, rule) was mapped by the `bad` run already
    assert mixed.layers[0].edp == pytest.approx(bad.layers[0].edp)
    assert [lc.edp for lc in mixed.layers[1:]] == pytest.approx([lc.edp for lc in fixed.layers[1:]])
