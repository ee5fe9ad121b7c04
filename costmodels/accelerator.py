"""Energy, latency and EDP of a network on an analytical accelerator, from ZigZag (KU Leuven, `zigzag-dse`).

ZigZag takes a hardware description (a PE array and its memory hierarchy, YAML), a mapping description
(the spatial unrolling over the array and which memory serves which operand, YAML) and a layer; its LOMA
engine enumerates temporal mappings (loop order and tiling over the memory levels), its cost model
prices each (memory accesses x energy per access + MACs x energy per MAC; cycles including memory
stalls), and the best one under `ZigZagSettings.objective` is kept. Energy comes in pJ, latency in
cycles of the array's clock.

`AcceleratorModel(hardware).cost(onnx_path)` costs every layer of an ONNX model that way:

1. The model's symbolic dimensions (the batch) are set to 1 and its shapes inferred.
2. ZigZag's ONNX parser turns Conv (grouped and depthwise included, as its G loop), QLinearConv, Gemm
   and MatMul nodes into layers; average pools are first rewritten as the depthwise convolutions they
   equal (`ZigZagSettings.pool_as_depthwise`); any other node with arithmetic (ReLU, Add, max pooling,
   reductions) is a `NotCosted` entry in the result, counted and reported, never a silent zero.
3. Each layer's shape key (its loop sizes, strides, padding, precisions, operator) plus the digest of the
   hardware and mapping files, ZigZag's version and the search settings is looked up in a `LayerCache`
   (JSON lines); only a layer never seen is mapped by ZigZag, and its result is appended at once.

ZigZag is an optional dependency (``pip install nacos[accel]``, Python >= 3.11); it is imported only
when a model is built, so the rest of `costmodels` runs without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from costmodels.accelerator_mapping import MappingRule, rule_temporal_stage
from costmodels.errors import CostModelError

__all__ = ["AcceleratorCost", "AcceleratorModel", "COSTED_OPS", "HARDWARE", "LayerCache", "LayerCost",
           "NO_ARITHMETIC_OPS", "NotCosted", "ZigZagSettings", "hardware_names", "read_hardware", "resolve_hardware",
           "zigzag_version"]

#: the ZigZag release this module was written and tested against (setup.cfg pins it in the `accel` extra)
ZIGZAG_PINNED = "3.9.1"

#: shipped array name -> (hardware file, mapping file) under zigzag/inputs/; the pairs ZigZag's own
#: examples use (Eyeriss-like has no mapping file of its own: ZigZag runs it with default.yaml). The
#: in-memory-computing arrays (aimc, dimc) need ZigZag's IMC flow and are left out.
HARDWARE: dict[str, tuple[str, str]] = {
    "eyeriss-like": ("eyeriss_like", "default"),
    "tpu-like": ("tpu_like", "tpu_like"),
    "edge-tpu-like": ("edge_tpu_like", "edge_tpu_like"),
    "ascend-like": ("ascend_like", "ascend_like"),
    "tesla-npu-like": ("tesla_npu_like", "tesla_npu_like"),
    "meta-prototype-like": ("meta_prototype", "meta_prototype_like"),
}

#: ONNX operators ZigZag's parser turns into layers it can map; every other node is not costed
COSTED_OPS = ("Conv", "QLinearConv", "Gemm", "MatMul")
#: nodes that do no arithmetic (constants, views): listed in `AcceleratorCost.free_nodes`, not as not costed
NO_ARITHMETIC_OPS = ("Constant", "Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Shape", "Dropout")
_OBJECTIVES = ("EDP", "energy", "latency")


def hardware_names() -> tuple[str, ...]:
    return tuple(sorted(HARDWARE))


def zigzag_version() -> str:
    """The installed ZigZag's version; `CostModelError` saying how to install it when it is missing."""
    from importlib import metadata

    try:
        return metadata.version("zigzag-dse")
    except metadata.PackageNotFoundError:
        raise CostModelError("the accelerator cost model needs ZigZag: pip install 'nacos[accel]' "
                             f"(zigzag-dse=={ZIGZAG_PINNED}, Python >= 3.11)") from None


@dataclass(frozen=True)
class ZigZagSettings:
    """How hard ZigZag searches each layer (part of every cache key: a change maps layers anew).

    `lpf_limit`: LOMA's cap on the loop prime factors it permutes; the number of temporal mappings grows
    factorially with it. Measured here on 16x16 convolutions on the Eyeriss-like array: 4 takes 0.01 to
    0.7 s a layer, 5 takes 0.1 to 1.5 s, 6 (ZigZag's default) 1 to 2 s, 8 more than 70 s, for EDPs
    within a few per cent of each other. `pool_as_depthwise`: average pools are costed as depthwise
    convolutions (else they are not costed). `spatial_mappings`: how many spatial unrollings ZigZag generates
    where the mapping file leaves a choice. `objective`: what the best mapping minimises."""

    lpf_limit: int = 5
    spatial_mappings: int = 3
    objective: str = "EDP"
    temporal_mapping_type: str = "uneven"
    #: cost AveragePool / GlobalAveragePool as the depthwise convolution it equals (`_pools_as_depthwise`)
    pool_as_depthwise: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.lpf_limit <= 12:
            raise CostModelError(f"lpf_limit: must be in 1..12, got {self.lpf_limit}")
        if not 1 <= self.spatial_mappings <= 64:
            raise CostModelError(f"spatial_mappings: must be in 1..64, got {self.spatial_mappings}")
        if self.objective not in _OBJECTIVES:
            raise CostModelError(f"objective: must be one of {', '.join(_OBJECTIVES)}, got {self.objective!r}")
        if self.temporal_mapping_type not in ("uneven", "even"):
            raise CostModelError(f"temporal_mapping_type: must be uneven or even, got {self.temporal_mapping_type!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LayerCost:
    """One layer's best mapping and its cost. `edp` is energy_pj x latency_cycles (pJ x cycles);
    `mapping` is plain JSON: ``{"spatial": {operand: [[loop, ...] per level]}, "temporal": {...}}``;
    `cached`: the record came from the cache (no ZigZag call)."""

    name: str
    op_type: str
    shape_key: str
    energy_pj: float
    latency_cycles: float
    edp: float
    mac_utilization: float
    mapping: dict[str, Any]
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NotCosted:
    """A node of the model that ZigZag did not cost, and why."""

    name: str
    op_type: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AcceleratorCost:
    """The cost of one model: its layers in topological order and the nodes with arithmetic that were
    not costed (`not_costed`: element-wise ops, pooling, reductions; their cost is missing from the
    totals); `free_nodes`: the names of nodes that do no arithmetic (`NO_ARITHMETIC_OPS`). Layers run
    one after another, so the totals are sums; the model's EDP is total energy x total latency."""

    hardware: str
    layers: tuple[LayerCost, ...]
    not_costed: tuple[NotCosted, ...]
    free_nodes: tuple[str, ...]
    cache_hits: int
    zigzag_calls: int
    seconds: float

    @property
    def energy_pj(self) -> float:
        return sum(lc.energy_pj for lc in self.layers)

    @property
    def latency_cycles(self) -> float:
        return sum(lc.latency_cycles for lc in self.layers)

    @property
    def edp(self) -> float:
        return self.energy_pj * self.latency_cycles

    def to_json(self) -> dict[str, Any]:
        return {"hardware": self.hardware, "energy_pj": self.energy_pj, "latency_cycles": self.latency_cycles,
                "edp": self.edp, "cache_hits": self.cache_hits, "zigzag_calls": self.zigzag_calls,
                "seconds": self.seconds, "layers": [lc.to_json() for lc in self.layers],
                "not_costed": [n.to_json() for n in self.not_costed], "free_nodes": list(self.free_nodes)}


class LayerCache:
    """Per-layer results as JSON lines, ``{"key": ..., "record": {...}}`` one a line.

    Appends are durable (flushed and fsync'd before `put` returns), so a killed run keeps every layer it
    mapped. A damaged line (a torn last write, a hand edit) is skipped and counted in `skipped`, never
    fatal: that layer is mapped again and appended anew. One writer at a time per file (a search's
    evaluator); the last line for a key wins."""

    _FIELDS = ("op_type", "shape_key", "energy_pj", "latency_cycles", "edp", "mac_utilization", "mapping")

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.skipped = 0
        self._records: dict[str, dict[str, Any]] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.is_file():
            return
        with self.path.open("rb") as f:
            for raw in f:
                try:
                    row = json.loads(raw)
                    key, record = row["key"], row["record"]
                    if not isinstance(key, str) or any(k not in record for k in self._FIELDS):
                        raise ValueError("incomplete record")
                except (ValueError, KeyError, TypeError):
                    self.skipped += 1
                    continue
                self._records[key] = record

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": key, "record": record}, sort_keys=True) + "\n"
        with self.path.open("ab") as f:
            # a torn line left by a killed writer would swallow this one: start on a fresh line
            if f.tell() and not self._ends_with_newline():
                f.write(b"\n")
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())
        self._records[key] = record

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"


def _zigzag_inputs() -> Path:
    zigzag_version()
    import zigzag

    return Path(zigzag.__file__).parent / "inputs"


def _flatten_errors(errors: Any, prefix: str = "") -> list[str]:
    """Cerberus' nested error dict ``{'memories': [{'dram': [{'r_cost': ['required field']}]}]}`` as
    ``['memories.dram.r_cost: required field']``."""
    out: list[str] = []
    if isinstance(errors, dict):
        for key, value in errors.items():
            out += _flatten_errors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(errors, list):
        for item in errors:
            out += _flatten_errors(item, prefix)
    else:
        out.append(f"{prefix}: {errors}" if prefix else str(errors))
    return out


@contextmanager
def _zigzag_logs(level: int = logging.ERROR) -> Iterator[list[str]]:
    """Quiet ZigZag's per-layer warnings (it reports each spatial unrolling it clips) and collect its
    critical messages (its validator reports why a hardware file is invalid by logging, not raising)."""
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.CRITICAL:
                messages.append(record.getMessage())

    logger = logging.getLogger("zigzag")
    old_level, handler = logger.level, _Collect()
    logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _read_yaml(path: Path, what: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CostModelError(f"{what} {path}: cannot be read as YAML ({exc})") from exc


def _parse_accelerator(data: Any, path: Path) -> Any:
    """A ZigZag `Accelerator` from a hardware file's data; `CostModelError` naming the missing or bad keys."""
    from zigzag.parser.accelerator_factory import AcceleratorFactory
    from zigzag.parser.accelerator_validator import AcceleratorValidator

    if not isinstance(data, dict):
        raise CostModelError(f"hardware {path}: must be a YAML mapping with keys name, memories, "
                             f"operational_array, got {type(data).__name__}")
    with _zigzag_logs() as messages:
        validator = AcceleratorValidator(data)
        # Step 1. the schema (required keys, types); ZigZag's own validate() goes on after a schema
        # failure and dies on the missing key with a bare KeyError, so check the schema first
        if not validator.validator.validate(validator.data):
            bad = "; ".join(_flatten_errors(validator.validator.errors))
            raise CostModelError(f"hardware {path}: {bad}")
        # Step 2. the rules outside the schema (memory levels against array dimensions, ports)
        try:
            ok = validator.validate()
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CostModelError(f"hardware {path}: invalid ({type(exc).__name__}: {exc})") from exc
        if not ok:
            raise CostModelError(f"hardware {path}: {'; '.join(messages) or 'rejected by ZigZag'}")
        try:
            return AcceleratorFactory(validator.normalized_data).create()
        except Exception as exc:  # noqa: BLE001 - any failure of ZigZag's factory is a bad file
            raise CostModelError(f"hardware {path}: ZigZag cannot build it ({type(exc).__name__}: {exc})") from exc


def _check_mapping(data: Any, path: Path) -> None:
    from zigzag.parser.mapping_validator import MappingValidator

    if not isinstance(data, list):
        raise CostModelError(f"mapping {path}: must be a YAML list of entries with name, spatial_mapping, "
                             f"memory_operand_links, got {type(data).__name__}")
    with _zigzag_logs() as messages:
        validator = MappingValidator(data)
        try:
            ok = validator.validate()
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CostModelError(f"mapping {path}: invalid ({type(exc).__name__}: {exc})") from exc
        if not ok:
            errors = getattr(getattr(validator, "validator", None), "errors", None)
            raise CostModelError(f"mapping {path}: {'; '.join(_flatten_errors(errors) if errors else messages)}")


def _fixed_shape_model(onnx_path: Path) -> Any:
    """The model with its symbolic dimensions (batch) set to 1 and every tensor's shape inferred: ZigZag
    reads layer sizes from the graph's value_info."""
    import onnx
    from onnx import shape_inference

    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError, OSError, ...
        raise CostModelError(f"{onnx_path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    for value in list(model.graph.input) + list(model.graph.output):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param or dim.dim_value <= 0:
                dim.dim_value = 1
    del model.graph.value_info[:]
    try:
        return shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as exc:  # noqa: BLE001 - onnx's InferenceError and friends
        raise CostModelError(f"{onnx_path}: shape inference failed ({type(exc).__name__}: {exc})") from exc


def _pools_as_depthwise(model: Any) -> Any:
    """A copy of `model` in which each AveragePool / GlobalAveragePool over an (N, C, H, W) tensor is the
    depthwise convolution it equals (C groups, a k x k kernel of 1 / k^2; the same k^2 MACs per output),
    so that ZigZag, whose ONNX parser reads only Conv / Gemm / MatMul, maps and prices it. ZigZag counts
    the tiny constant kernel as weight traffic. Nodes keep their names (and so their op type in the
    result). A pool it cannot rewrite (not 4-D, dilated, shapes unknown) is left as it is: not costed."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*out.graph.input, *out.graph.value_info, *out.graph.output]}
    for i, node in enumerate(out.graph.node):
        if node.op_type not in ("AveragePool", "GlobalAveragePool"):
            continue
        shape = shapes.get(node.input[0], [])
        if len(shape) != 4 or min(shape) <= 0:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "GlobalAveragePool":
            kernel, strides, pads = list(shape[2:]), [1, 1], [0, 0, 0, 0]
        else:
            kernel = list(attrs.get("kernel_shape", []))
            strides = list(attrs.get("strides", [1, 1]))
            pads = list(attrs.get("pads", [0, 0, 0, 0]))
            if len(kernel) != 2 or any(d != 1 for d in attrs.get("dilations", [1, 1])):
                continue
        channels = shape[1]
        weight = f"{node.name or f'pool{i}'}__zigzag_depthwise_ones"
        w = np.full((channels, 1, *kernel), 1.0 / (kernel[0] * kernel[1]), dtype=np.float32)
        out.graph.initializer.append(numpy_helper.from_array(w, weight))
        conv = helper.make_node("Conv", [node.input[0], weight], list(node.output), name=node.name,
                                kernel_shape=kernel, strides=strides, pads=pads, group=channels)
        out.graph.node[i].CopyFrom(conv)
    return out


def _shape_key(layer: Any) -> str:
    """What decides a layer's cost, readable: ``Conv {B: 1, K: 8, ...} rel=[...] pad={...} prec={...}``."""
    return (f"{layer.type} {layer.layer_dim_sizes} rel={layer.dimension_relations} pad={layer.padding} "
            f"prec={layer.operand_precision} const={sorted(str(o) for o in layer.constant_operands)}")


def _mapping_attributes(layer: Any) -> str:
    """What the mapping file chose for this layer (a mapping may name layers, not only operator types)."""
    return (f"{layer.spatial_mapping}|{layer.spatial_mapping_hint}|{layer.memory_operand_links}|"
            f"{layer.temporal_ordering}")


def _plain(obj: Any) -> Any:
    from zigzag.utils import json_repr_handler

    return json.loads(json.dumps(json_repr_handler(obj), default=str))


def resolve_hardware(hardware: str | Path, mapping: str | Path | None = None) -> tuple[Path, Path]:
    """(hardware YAML, mapping YAML) of a shipped array name or a hardware file (the mapping: `mapping`,
    else the shipped array's own, ZigZag's default.yaml for a user file); `CostModelError` when missing."""
    inputs = _zigzag_inputs()
    name = str(hardware)
    if name in HARDWARE:
        hw_file, map_file = HARDWARE[name]
        hardware_path = inputs / "hardware" / f"{hw_file}.yaml"
        default_mapping = inputs / "mapping" / f"{map_file}.yaml"
    elif name.endswith((".yaml", ".yml")):
        hardware_path = Path(hardware)
        default_mapping = inputs / "mapping" / "default.yaml"
        if not hardware_path.is_file():
            raise CostModelError(f"hardware {hardware_path}: no such file")
    else:
        raise CostModelError(f"unknown hardware {name!r}: choose one of {', '.join(hardware_names())} "
                             f"or give a hardware YAML path")
    mapping_path = Path(mapping) if mapping is not None else default_mapping
    if not mapping_path.is_file():
        raise CostModelError(f"mapping {mapping_path}: no such file")
    return hardware_path, mapping_path


def read_hardware(path: Path) -> Any:
    """A hardware YAML's data (`CostModelError` when unreadable)."""
    return _read_yaml(Path(path), "hardware")


class AcceleratorModel:
    """ZigZag's cost of a model on one accelerator (see the module docstring).

    `hardware`: a shipped array name (`hardware_names()`) or the path of a hardware YAML; `mapping`: a
    mapping YAML (default: the shipped array's own, ZigZag's default.yaml for a user file); `cache`: the
    JSON-lines layer cache (None: in memory only, for this instance). A bad file raises `CostModelError`
    naming the key. Not thread-safe (one cost() at a time); picklable (the parsed array is rebuilt)."""

    def __init__(self, hardware: str | Path, mapping: str | Path | None = None,
                 settings: ZigZagSettings | None = None, cache: str | Path | None = None) -> None:
        self.settings = settings or ZigZagSettings()
        self.version = zigzag_version()
        self.hardware = str(hardware)
        self.hardware_path, self.mapping_path = resolve_hardware(hardware, mapping)
        hw_data = _read_yaml(self.hardware_path, "hardware")
        map_data = _read_yaml(self.mapping_path, "mapping")
        self._accelerator = _parse_accelerator(hw_data, self.hardware_path)
        _check_mapping(map_data, self.mapping_path)
        self.digest = hashlib.sha256(json.dumps({"hardware": hw_data, "mapping": map_data}, sort_keys=True,
                                                default=str).encode()).hexdigest()[:16]
        self.cache_path = Path(cache) if cache is not None else None
        self._cache: LayerCache | None = None
        self._memory: dict[str, dict[str, Any]] = {}
        #: ZigZag mapping searches this instance ran (one per layer it had not seen)
        self.zigzag_calls = 0

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_accelerator": None, "_cache": None}

    @property
    def cache(self) -> LayerCache | None:
        if self._cache is None and self.cache_path is not None:
            self._cache = LayerCache(self.cache_path)
        return self._cache

    def _accel(self) -> Any:
        if self._accelerator is None:
            self._accelerator = _parse_accelerator(_read_yaml(self.hardware_path, "hardware"), self.hardware_path)
        return self._accelerator

    def cache_key(self, layer: Any, rule: MappingRule | None = None) -> str:
        parts: list[Any] = [_shape_key(layer), _mapping_attributes(layer), self.digest, self.version,
                            self.settings.to_json()]
        if rule is not None:  # a fixed mapping rule; without one, LOMA's search (the keys of before)
            parts.append({"rule": rule.to_json()})
        blob = json.dumps(parts, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def cost(self, onnx_path: str | Path, rule: MappingRule | None = None,
             layer_rules: Mapping[str, MappingRule] | None = None) -> AcceleratorCost:
        """Every layer's best mapping and cost (see the module docstring); `CostModelError` for a file
        that is no ONNX model or that ZigZag's parser cannot read. Without `rule`, ZigZag's LOMA engine
        searches each layer's temporal mapping; with one (`costmodels.accelerator_mapping.MappingRule`),
        every layer runs under that fixed loop order and tiling, except those `layer_rules` names (ONNX
        node name -> rule: a per-layer mapping, as the one-stage genome holds)."""
        from zigzag.parser.onnx.onnx_model_parser import ONNXModelParser
        from zigzag.workload.layer_node import LayerNode

        start = time.perf_counter()
        model = _fixed_shape_model(Path(onnx_path))
        nodes = {node.name: node.op_type for node in model.graph.node}
        if self.settings.pool_as_depthwise:
            model = _pools_as_depthwise(model)
        with _zigzag_logs():
            try:
                workload = ONNXModelParser(model, str(self.mapping_path)).run()
            except Exception as exc:  # noqa: BLE001 - ZigZag's parser asserts on what it cannot read
                raise CostModelError(f"{onnx_path}: ZigZag's ONNX parser failed "
                                     f"({type(exc).__name__}: {exc})") from exc
            layers: list[LayerCost] = []
            not_costed: list[NotCosted] = []
            free: list[str] = []
            hits = calls = 0
            for node in workload.topological_sort():
                op_type = nodes.get(node.name, str(getattr(node, "type", "?")))
                if not isinstance(node, LayerNode) and op_type in NO_ARITHMETIC_OPS:
                    free.append(node.name)
                    continue
                if not isinstance(node, LayerNode):
                    not_costed.append(NotCosted(node.name, op_type, f"ZigZag maps only {', '.join(COSTED_OPS)}"))
                    continue
                layer_rule = (layer_rules or {}).get(node.name, rule)
                key = self.cache_key(node, layer_rule)
                record = self._lookup(key)
                if record is not None:
                    hits += 1
                    # the record may come from another op of the same shape (a pool and a depthwise conv)
                    layers.append(LayerCost(node.name, cached=True, **{**record, "op_type": op_type}))
                    continue
                calls += 1
                try:
                    record = self._map_layer(node, op_type, layer_rule)
                except Exception as exc:  # noqa: BLE001 - a layer ZigZag cannot map is reported, not fatal
                    not_costed.append(NotCosted(node.name, op_type, f"ZigZag failed: {type(exc).__name__}: {exc}"))
                    continue
                self._store(key, record)
                layers.append(LayerCost(node.name, **record))
        self.zigzag_calls += calls
        return AcceleratorCost(self.hardware, tuple(layers), tuple(not_costed), tuple(free), hits, calls,
                               time.perf_counter() - start)

    def _lookup(self, key: str) -> dict[str, Any] | None:
        cache = self.cache
        return cache.get(key) if cache is not None else self._memory.get(key)

    def _store(self, key: str, record: dict[str, Any]) -> None:
        cache = self.cache
        if cache is not None:
            cache.put(key, record)
        else:
            self._memory[key] = record

    def _map_layer(self, layer: Any, op_type: str, rule: MappingRule | None = None) -> dict[str, Any]:
        """One ZigZag mapping search: spatial mappings, LOMA's temporal mappings (or the one `rule` makes),
        each priced, the best kept."""
        from zigzag.mapping.temporal_mapping import TemporalMappingType
        from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage
        from zigzag.stages.main import MainStage
        from zigzag.stages.mapping.spatial_mapping_generation import SpatialMappingGeneratorStage
        from zigzag.stages.mapping.temporal_mapping_generator_stage import TemporalMappingGeneratorStage
        from zigzag.stages.results.reduce_stages import MinimalEDPStage, MinimalEnergyStage, MinimalLatencyStage

        s = self.settings
        reduce = {"EDP": MinimalEDPStage, "energy": MinimalEnergyStage, "latency": MinimalLatencyStage}[s.objective]
        # the stages api.get_hardware_performance_zigzag runs below its WorkloadStage, without the ones that
        # write files (pickles, JSON, plots) or sum over layers
        temporal = TemporalMappingGeneratorStage if rule is None else rule_temporal_stage(rule)
        stages = [reduce, SpatialMappingGeneratorStage, reduce, temporal, CostModelStage]
        results = MainStage(stages, accelerator=self._accel(), layer=layer, loma_lpf_limit=s.lpf_limit,
                            loma_show_progress_bar=False, nb_mappings_generated=s.spatial_mappings,
                            enable_mix_spatial_mapping_generation=False,
                            access_same_data_considered_as_no_access=True,
                            temporal_mapping_type=TemporalMappingType(s.temporal_mapping_type)).run()
        if len(results) != 1:
            raise CostModelError(f"ZigZag returned {len(results)} results for one layer")
        cme = results[0][0]
        energy, latency = float(cme.energy_total), float(cme.latency_total2)
        return {"op_type": op_type, "shape_key": _shape_key(layer), "energy_pj": energy,
                "latency_cycles": latency, "edp": energy * latency,
                "mac_utilization": float(cme.mac_utilization2),
                "mapping": {"spatial": _plain(cme.spatial_mapping), "temporal": _plain(cme.temporal_mapping)}}


def main(argv: list[str] | None = None) -> int:
    """``python -m costmodels.accelerator MODEL.onnx [--hardware NAME|FILE.yaml] [--mapping FILE.yaml]
    [--cache FILE.jsonl] [--lpf-limit N]``: the cost as JSON on stdout; exit 2 on bad input."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m costmodels.accelerator", description=main.__doc__)
    parser.add_argument("onnx", nargs="?", help="the ONNX model to cost")
    parser.add_argument("--hardware", default="eyeriss-like",
                        help=f"one of {', '.join(hardware_names())} or a hardware YAML path")
    parser.add_argument("--mapping", default=None, help="a mapping YAML (default: the array's own)")
    parser.add_argument("--cache", default=None, help="the JSON-lines layer cache (default: none)")
    parser.add_argument("--lpf-limit", type=int, default=ZigZagSettings.lpf_limit)
    parser.add_argument("--list", action="store_true", help="list the shipped arrays and exit")
    ns = parser.parse_args(argv)
    if ns.list:
        print("\n".join(hardware_names()))
        return 0
    if ns.onnx is None:
        parser.error("the ONNX model is required (or --list)")
    try:
        model = AcceleratorModel(ns.hardware, ns.mapping, ZigZagSettings(lpf_limit=ns.lpf_limit), ns.cache)
        result = model.cost(ns.onnx)
    except CostModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_json(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
