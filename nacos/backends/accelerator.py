"""An analytical accelerator as a target: ZigZag maps each layer of the candidate on a PE array
(`costmodels.accelerator.AcceleratorModel`) and the row records energy, latency, EDP and each layer's
chosen mapping.

`build` is the mapping search (the accelerator's "compile": only layers the per-layer cache has never
seen cost a ZigZag call); `measure` reads the result out. The latency in ms is the layers' cycles at a
clock: ZigZag prices cycles, not time, and its shipped arrays name no clock, so the default is
`DEFAULT_CLOCK_MHZ` (200 MHz, Eyeriss' own figure, Chen et al. ISSCC 2016); set `clock_mhz` for another
array. ``target: accel://<hardware>`` names the array (`parse_accel_target`); a run whose target is not
``accel://`` (a backend asked for by name, `nacos eval --latency zigzag`) gets the Eyeriss-like array.

Three backends, one per search mode on an accelerator (`nacos.search.modes`, ``SearchMode.accel_backend``):

- ``zigzag``: ZigZag's LOMA engine searches each layer's temporal mapping (two-stage: the architecture
  outside, the mapping per layer inside);
- ``zigzag-fixed``: one fixed mapping rule for every layer (`costmodels.accelerator_mapping.MappingRule`,
  the default `ScheduleConfig`'s loop order and tiles), the way a fixed-dataflow accelerator runs
  whatever it is given (baseline);
- ``zigzag-genome``: the one-stage genome's per-layer `ScheduleConfig` as each layer's mapping rule
  (NAAS's dual space: the architecture and the mapping searched by one evolutionary algorithm).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nacos.backends.base import Backend, Built
from nacos.errors import ConfigError
from nacos.search.evaluation import LatencyResult

__all__ = ["DEFAULT_CLOCK_MHZ", "DEFAULT_HARDWARE", "AcceleratorLatency", "FixedMappingAccelerator",
           "GenomeMappingAccelerator", "cost_edp", "cost_ms", "parse_accel_target"]

DEFAULT_CLOCK_MHZ = 200.0
DEFAULT_HARDWARE = "eyeriss-like"
#: the layer cache's file name, beside the tuning database (``.nacos-cache/`` by default)
CACHE_NAME = "accelerator-layers.jsonl"


def cost_ms(cost: Any, clock_mhz: float = DEFAULT_CLOCK_MHZ) -> float:
    """An `AcceleratorCost`'s latency in ms: its cycles at `clock_mhz`."""
    return cost.latency_cycles / (clock_mhz * 1e3)


def cost_edp(cost: Any, clock_mhz: float = DEFAULT_CLOCK_MHZ) -> float:
    """An `AcceleratorCost`'s EDP as a search row has it: energy in mJ x latency in ms."""
    return cost.energy_pj * 1e-9 * cost_ms(cost, clock_mhz)


def parse_accel_target(target: str) -> str:
    """``accel://eyeriss-like`` -> ``eyeriss-like``; ``accel:///path/to/array.yaml`` -> the path."""
    if not target.startswith("accel://") or not target[len("accel://"):]:
        raise ConfigError(f"target: {target!r} is not accel://HARDWARE (a shipped array name or a YAML path)")
    return target[len("accel://"):]


class AcceleratorLatency(Backend):
    """Latency (and energy, EDP) of a candidate on a ZigZag accelerator; see the module docstring.

    Details of each row: ``energy_mj``, ``energy_pj``, ``latency_cycles``, ``edp`` (pJ x cycles),
    ``clock_mhz``, ``hardware``, ``layers`` (name, shape key, energy, cycles, EDP, mapping per layer),
    ``layers_costed``, ``layers_not_costed`` (the count) and ``not_costed`` (which and why: nodes with
    arithmetic ZigZag does not model, missing from the totals), ``nodes_without_arithmetic`` (constants,
    views),
    ``cache_hits``, ``zigzag_calls``, ``measured_by``."""

    name = "zigzag"

    def __init__(self, hardware: str = DEFAULT_HARDWARE, clock_mhz: float = DEFAULT_CLOCK_MHZ,
                 cache: str | Path | None = None, mapping: str | Path | None = None,
                 settings: Any = None, space: Any = None) -> None:
        from costmodels.accelerator import AcceleratorModel
        from costmodels.errors import CostModelError

        if not clock_mhz > 0:
            raise ConfigError(f"clock_mhz: must be > 0, got {clock_mhz}")
        self.clock_mhz = float(clock_mhz)
        self.space = space
        try:
            self.model = AcceleratorModel(hardware, mapping, settings, cache)
        except CostModelError as exc:
            raise ConfigError(f"target: {exc}") from exc
        self._sized: dict[Any, Any] = {}

    def _model_for(self, genome: Any) -> tuple[Any, Any, dict[str, Any]]:
        """(the model that costs `genome`, the mode's own genome, row details of the sizing). A
        `nacos.search.sized_space.SizedGenome` is costed on the array its sizing derives from the target's
        (`costmodels.accelerator_sizing`; the derived YAML beside the layer cache, the cache shared: its
        keys hold the hardware's digest); any other genome on the target's array as it is."""
        sizing = getattr(genome, "sizing", None)
        if sizing is None:
            return self.model, genome, {}
        if sizing not in self._sized:
            self._sized[sizing] = self._sized_model(sizing)
        model, details = self._sized[sizing]
        return model, genome.inner, details

    def _sized_model(self, sizing: Any) -> tuple[Any, dict[str, Any]]:
        """(the model of `sizing`'s derived array, its row details), made once per sizing: the derived YAML
        written beside the layer cache, the cache shared."""
        from costmodels.accelerator import AcceleratorModel, read_hardware
        from costmodels.accelerator_sizing import hardware_area, sized_hardware, write_sized_hardware

        base = read_hardware(self.model.hardware_path)
        cache = self.model.cache_path
        out_dir = (cache.parent if cache is not None else Path(".nacos-cache")) / "sized-hardware"
        path = write_sized_hardware(base, sizing, out_dir)
        model = AcceleratorModel(str(path), self.model.mapping_path, self.model.settings, cache)
        sized = sized_hardware(base, sizing)
        details = {"accel_pe_array": "x".join(str(d) for d in sized["operational_array"]["sizes"]),
                   "accel_buffer_scale": sizing.buffer_scale, "accel_sizing": sizing.label,
                   "accel_area": hardware_area(sized), "accel_base_area": hardware_area(base),
                   "accel_hardware_file": str(path), "hardware": f"{self.model.hardware} {sizing.label}"}
        return model, details

    @classmethod
    def from_config(cls, cfg: Any, space: Any = None) -> AcceleratorLatency:
        target = str(getattr(cfg, "target", ""))
        hardware = parse_accel_target(target) if target.startswith("accel://") else DEFAULT_HARDWARE
        cache = Path(cfg.tuning.database).parent / CACHE_NAME
        return cls(hardware, cache=cache, space=space)

    def _rules(self, genome: Any, arch: Any, onnx_path: Path) -> dict[str, Any]:
        """`AcceleratorModel.cost`'s mapping arguments: none, LOMA searches every layer."""
        return {}

    def _build(self, genome: Any, arch: Any, onnx_path: Path) -> Built:
        model, inner, sizing = self._model_for(genome)
        cost = model.cost(onnx_path, **self._rules(inner, arch, onnx_path))
        hardware = sizing.get("hardware", model.hardware)
        return Built(True, seconds=cost.seconds, artifact=cost,
                     details={**sizing, "measured_by": f"zigzag {model.version} on {hardware} at "
                                                      f"{self.clock_mhz:g} MHz", "hardware": hardware})

    def _measure(self, built: Built) -> LatencyResult:
        cost = built.artifact
        if not cost.layers:
            return LatencyResult(float("nan"), ok=False, reason="ZigZag costed no layer of the model",
                                 details={"not_costed": [n.to_json() for n in cost.not_costed]})
        ms = cost_ms(cost, self.clock_mhz)
        details = {
            "measured_by": f"zigzag {self.model.version} on {self.model.hardware} at {self.clock_mhz:g} MHz",
            "hardware": self.model.hardware, "clock_mhz": self.clock_mhz,
            "energy_pj": cost.energy_pj, "energy_mj": cost.energy_pj * 1e-9,
            "latency_cycles": cost.latency_cycles, "edp": cost.edp,
            "layers": [lc.to_json() for lc in cost.layers], "layers_costed": len(cost.layers),
            "layers_not_costed": len(cost.not_costed), "not_costed": [n.to_json() for n in cost.not_costed],
            "nodes_without_arithmetic": len(cost.free_nodes),
            "cache_hits": cost.cache_hits, "zigzag_calls": cost.zigzag_calls,
            **built.details,
        }
        return LatencyResult(ms, details=details)


class FixedMappingAccelerator(AcceleratorLatency):
    """Every layer under one fixed mapping rule (the default `ScheduleConfig`'s loop order and tiles):
    the compiler-agnostic baseline on an accelerator."""

    name = "zigzag-fixed"

    def _rules(self, genome: Any, arch: Any, onnx_path: Path) -> dict[str, Any]:
        from costmodels.accelerator_mapping import MappingRule

        return {"rule": MappingRule()}


class GenomeMappingAccelerator(AcceleratorLatency):
    """The one-stage genome's `ScheduleConfig` per layer as that layer's mapping rule. The model's
    conv / dense nodes are matched, in order, with the architecture's compute layers
    (`archspace.layers.conv_layers`); a layer the genome holds no config for (its shape shares another
    slot's, as in the TVM genome backend) takes that slot's, else the default rule."""

    name = "zigzag-genome"

    def _rules(self, genome: Any, arch: Any, onnx_path: Path) -> dict[str, Any]:
        import onnx

        from archspace.layers import conv_layers
        from costmodels.accelerator import COSTED_OPS
        from costmodels.accelerator_mapping import MappingRule
        from nacos.backends.tvm import configs_by_layer_key, model_io, slot_keys
        from schedules.records import ScheduleConfig

        graph = onnx.load(str(onnx_path), load_external_data=False).graph
        io = model_io(onnx_path, graph)
        layers = conv_layers(arch, self.space, *io)
        nodes = [n.name for n in graph.node if n.op_type in COSTED_OPS]
        if len(nodes) != len(layers):
            raise ConfigError(f"zigzag-genome: the model has {len(nodes)} conv / dense nodes, the architecture "
                              f"{len(layers)} compute layers; cannot pair the genome's mappings with them")
        keys = slot_keys(arch, self.space, *io)
        by_slot, by_key = dict(genome.schedules), configs_by_layer_key(genome, keys)
        rules = {}
        for node, layer in zip(nodes, layers):
            config = by_slot.get(layer.slot) or by_key.get(keys[layer.slot])
            # no config, or a database gene (a TVM record means nothing to an accelerator): the default rule
            rules[node] = MappingRule.from_schedule_config(config) if isinstance(config, ScheduleConfig) \
                else MappingRule()
        return {"rule": MappingRule(), "layer_rules": rules}
