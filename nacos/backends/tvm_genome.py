"""The one-stage TVM backend: the genome's own per-layer `ScheduleConfig`s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nacos.backends.base import Built
from nacos.backends.tvm import TVMBackend, configs_by_layer_key, model_io, slot_keys

__all__ = ["GenomeScheduleLatency"]


class GenomeScheduleLatency(TVMBackend):
    """The one-stage genome's config per layer; layers of one shape share the first slot's config."""

    name = "tvm-genome-schedules"

    def __init__(self, cfg: Any, space) -> None:
        super().__init__(cfg)
        self.space = space

    @classmethod
    def from_config(cls, cfg: Any, space: Any = None) -> GenomeScheduleLatency:
        return cls(cfg, space)

    def describe(self, genome: Any) -> dict[str, Any]:
        return {"source": "one-stage genome", "layers": [[s, c.to_dict()] for s, c in genome.schedules]}

    def _build(self, genome: Any, arch: Any, onnx_path: Path) -> Built:
        from schedules.explicit.space import GlobalPolicy, LayerShape

        by_key = configs_by_layer_key(genome, slot_keys(arch, self.space, *model_io(onnx_path)))

        def choose(name: str, key: tuple):
            config = by_key.get(key)
            # a config that does not fit its layer is clamped to fit, as a global policy would be
            return None if config is None else GlobalPolicy(config).for_layer(LayerShape(*key[:5]))

        compiled, notes = self._compile_scheduled(onnx_path, choose)
        # a conv / dense function left without its genome's config ("elementwise": the fused elementwise
        # functions, scheduled by the elementwise rule, are not layers)
        unscheduled = sorted(n for n, v in notes.items() if v not in ("ok", "elementwise"))
        return self._built(compiled, {"unscheduled_layers": len(unscheduled)})
