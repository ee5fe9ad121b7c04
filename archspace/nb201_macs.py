"""MACs of the exported NAS-Bench-201 network of any cell, from a handful of exported networks.

The 15,625 cells share one skeleton (stem, two residual reductions, classifier) and one shape per stage,
so a cell's MACs are the skeleton's plus, per edge, its operation's MACs at each stage. `MacsModel` reads
both off six real exports (`archspace.nb201_net` -> `archspace.export.export_module` ->
`archspace.stats.onnx_layer_stats`) and then prices every cell without exporting it. The exporter keeps
only the live edges (`archspace.nb201.live_edges`): `macs` counts those, `macs_all_edges` every
non-`none` edge (what a counter over the PyTorch modules, like NAS-Bench-201's own, sees).

Needs torch and onnx (the exports); `archspace.nb201` itself stays numpy-only.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from archspace.nb201 import NB201_OPS, live_edges

__all__ = ["MacsModel"]

#: the cell with a single skip edge 0->3: the skeleton alone (the skip costs nothing)
_SKELETON_CELL = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
#: cells per stage of the NAS-Bench-201 network
_CELLS_PER_STAGE = 5


class MacsModel:
    """MACs of the exported NAS-Bench-201 network of any cell from a handful of exported networks.

    All edges of a stage see the same tensor shape, so a cell's MACs are the skeleton's (stem, reduction
    blocks, classifier) plus, per live edge, the MACs of its operation at each stage (times the cells per
    stage). Both are read off exported networks by `archspace.stats.onnx_layer_stats`: the skeleton from
    the cell with a single skip edge 0->3, each operation from the cell with that operation alone on 0->3,
    stage by stage (grouped by output channels). `workdir` holds the exported ONNX files.
    """

    def __init__(self, workdir: str | Path) -> None:
        self.stage_macs: dict[str, dict[int, int]] = {}
        base = self._per_stage(self.export(_SKELETON_CELL, workdir))
        self.skeleton = int(sum(base.values()))
        for op in NB201_OPS[1:]:
            stats = self._per_stage(self.export(f"|none~0|+|none~0|none~1|+|{op}~0|none~1|none~2|", workdir))
            # MACs of one edge in one cell of each stage (the difference holds 5 cells per stage)
            self.stage_macs[op] = {c: (stats.get(c, 0) - base.get(c, 0)) // _CELLS_PER_STAGE
                                   for c in sorted(set(stats) | set(base))}
        # one edge position, over the whole network (5 cells per stage)
        self.edge_macs = {op: _CELLS_PER_STAGE * int(sum(v.values())) for op, v in self.stage_macs.items()}
        self.edge_macs["none"] = 0
        self.classifier = self.export_classifier_macs()

    @staticmethod
    def export(arch: str, workdir: str | Path) -> list[Any]:
        """`archspace.stats.LayerStat`s of the exported network of the cell `arch` (its string), the ONNX
        file written under `workdir` (named by the string's hash)."""
        import torch

        from archspace.export import export_module
        from archspace.nb201_net import build_nb201_network
        from archspace.stats import onnx_layer_stats

        path = export_module(build_nb201_network(arch), torch.zeros(1, 3, 32, 32),
                             Path(workdir) / f"nb201_{hashlib.sha1(arch.encode()).hexdigest()[:10]}.onnx")
        return onnx_layer_stats(path)

    @staticmethod
    def _per_stage(stats: list[Any]) -> dict[int, int]:
        out: dict[int, int] = {}
        for st in stats:
            if st.macs and len(st.output_shape) == 4:
                out[st.output_shape[1]] = out.get(st.output_shape[1], 0) + st.macs
            elif st.macs:
                out[-1] = out.get(-1, 0) + st.macs        # the classifier
        return out

    def export_classifier_macs(self) -> int:
        """The classifier's MACs, all a cell without an input-output path keeps (the exporter folds the
        rest to a constant)."""
        return 64 * 10                                   # Gemm 64 -> 10; checked by the test on a constant cell

    def macs(self, ops: tuple[str, ...]) -> int:
        """MACs of the exported network of the cell `ops`: the skeleton plus its live edges."""
        live = live_edges(ops)
        if not live:
            return self.classifier
        return self.skeleton + sum(self.edge_macs[ops[k]] for k in live)

    def macs_all_edges(self, ops: tuple[str, ...]) -> int:
        """The skeleton plus every non-`none` edge, live or not."""
        return self.skeleton + sum(self.edge_macs[op] for op in ops)

    def to_json(self) -> dict[str, Any]:
        return {"skeleton_macs": self.skeleton, "edge_macs_per_op_all_stages": self.edge_macs,
                "edge_macs_per_op_per_stage_channels": {op: {str(c): m for c, m in v.items() if c > 0}
                                                       for op, v in self.stage_macs.items()}}
