"""`archspace.nb201_macs.MacsModel`: the MACs of any NAS-Bench-201 cell's exported network from six real
exports, checked against full exports of other cells (live edges only: the exporter drops dead ones, and a
cell without an input-output path keeps only the classifier). Needs no table: the networks are built."""

from __future__ import annotations

from archspace.nb201 import NB201Arch, live_edges
from archspace.nb201_macs import MacsModel


def test_macs_formula_matches_exported_networks(tmp_path):
    """Per-edge MACs summed over live edges equal the MACs of the exported ONNX graph."""
    mm = MacsModel(tmp_path)
    assert mm.edge_macs["nor_conv_3x3"] == 5 * 9 * (16 * 16 * 32 * 32 + 32 * 32 * 16 * 16 + 64 * 64 * 8 * 8)
    cells = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
             # the conv on 0->1 is dead (node 1 feeds nothing): the exporter drops it
             "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",
             "|nor_conv_1x1~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|none~0|skip_connect~1|nor_conv_1x1~2|",
             # no input-output path: the network computes a constant, only the classifier remains
             "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]
    for text in cells:
        arch = NB201Arch.from_string(text)
        exported = sum(st.macs for st in MacsModel.export(text, tmp_path))
        assert mm.macs(arch.ops) == exported, (text, mm.macs(arch.ops), exported)
    assert live_edges(NB201Arch.from_string(cells[1]).ops) == [3]
    assert mm.macs(NB201Arch.from_string(cells[0]).ops) == 220_119_680
    # every edge counted, live or not: the dead conv of the second cell too
    dead = NB201Arch.from_string(cells[1]).ops
    assert mm.macs_all_edges(dead) == mm.macs(dead) + mm.edge_macs["nor_conv_3x3"]
    # the JSON the benchmark records: per-op MACs over the network, per stage by output channels
    js = mm.to_json()
    assert js["skeleton_macs"] == mm.skeleton and js["edge_macs_per_op_all_stages"]["none"] == 0
    assert set(js["edge_macs_per_op_per_stage_channels"]["nor_conv_3x3"]) == {"16", "32", "64"}
