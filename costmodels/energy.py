"""Energy: an operation-level model and a measured-latency x power proxy, both reported.

Operation-level: E = sum over layers of MACs x e_MAC(precision) + bytes moved x e_byte(level).
A layer's bytes (inputs, weights, output) are charged at the on-chip SRAM cost when its working set
fits in `cache_bytes`, else at the DRAM cost; every MAC also pays for its operands from the register
file. Bytes scale with the precision's element size (fp32 4, fp16 2, int8 1).

Default constants: M. Horowitz, "Computing's energy problem (and what we can do about it)",
ISSCC 2014, for a 45 nm process at 0.9 V (the table as reproduced in Han et al., "Learning both
Weights and Connections for Efficient Neural Networks", NeurIPS 2015, table 1):

    8-bit int  mult 0.2 pJ, add 0.03 pJ      32-bit int  mult 3.1 pJ, add 0.1 pJ
    16-bit float mult 1.1 pJ, add 0.4 pJ     32-bit float mult 3.7 pJ, add 0.9 pJ
    32-bit register file access 1 pJ; 32-bit SRAM (cache) access 5 pJ; 32-bit DRAM access 640 pJ

so e_MAC = mult + add: fp32 4.6 pJ, fp16 1.5 pJ, int8 0.3 pJ (int8 multiply with a 32-bit
accumulate: 0.2 + 0.1); per byte: register file 0.25 pJ, SRAM 1.25 pJ, DRAM 160 pJ. These are
45 nm figures: absolute joules on a modern CPU differ, the ratios (DRAM >> SRAM >> arithmetic)
are what makes the model rank architectures sensibly. Override them with `EnergyConstants`.

Proxy: E = measured latency x average power. The power figure is the caller's (a datasheet TDP, an
external power meter, RAPL); the default is a placeholder and says so in the report.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

from archspace.precision import PRECISION_BYTES
from costmodels.errors import CostModelError
from costmodels.workloads import DTYPE_BYTES
from schedules.records import LayerWorkload

__all__ = ["EnergyConstants", "HOROWITZ_2014", "LayerEnergy", "EnergyReport", "PLACEHOLDER_POWER_W", "op_energy",
           "proxy_energy_j",
           "energy_report"]

PJ = 1e-12


@dataclass(frozen=True)
class EnergyConstants:
    mac_pj: dict[str, float] = field(default_factory=lambda: {"fp32": 4.6, "fp16": 1.5, "int8": 0.3})
    register_pj_per_byte: float = 0.25
    sram_pj_per_byte: float = 1.25
    dram_pj_per_byte: float = 160.0
    #: Register-file bytes per MAC: two operand reads at the precision's size.
    operand_reads_per_mac: int = 2
    #: A layer whose bytes fit in this many bytes moves them at the SRAM cost (default: 1 MiB, an L2).
    cache_bytes: int = 1 << 20
    source: str = ("M. Horowitz, ISSCC 2014, 45 nm 0.9 V (as tabled in Han et al., NeurIPS 2015): "
                   "fp32 mult 3.7 + add 0.9 pJ; fp16 1.1 + 0.4; int8 mult 0.2 + int32 add 0.1; "
                   "32-bit register 1 pJ, SRAM 5 pJ, DRAM 640 pJ")

    def __post_init__(self) -> None:
        for p in PRECISION_BYTES:
            if p not in self.mac_pj:
                raise CostModelError(f"EnergyConstants.mac_pj lacks precision {p!r}")
        for name in ("register_pj_per_byte", "sram_pj_per_byte", "dram_pj_per_byte"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise CostModelError(f"EnergyConstants.{name} must be finite and >= 0")


HOROWITZ_2014 = EnergyConstants()


@dataclass(frozen=True)
class LayerEnergy:
    name: str
    compute_j: float
    register_j: float
    memory_j: float
    memory_level: str

    @property
    def total_j(self) -> float:
        return self.compute_j + self.register_j + self.memory_j


def op_energy(layers: Sequence[LayerWorkload], precision: str = "fp32",
              constants: EnergyConstants = HOROWITZ_2014) -> list[LayerEnergy]:
    """Per-layer energy (joules) by the operation-level model; each layer counted `count` times."""
    if precision not in PRECISION_BYTES:
        raise CostModelError(f"unknown precision {precision!r}; expected one of {sorted(PRECISION_BYTES)}")
    eb = PRECISION_BYTES[precision]
    out = []
    for w in layers:
        native = DTYPE_BYTES.get(w.dtype)
        if native is None:
            raise CostModelError(f"{w.name}: unknown dtype {w.dtype!r}")
        nbytes = w.bytes * eb / native
        level = "sram" if nbytes <= constants.cache_bytes else "dram"
        per_byte = constants.sram_pj_per_byte if level == "sram" else constants.dram_pj_per_byte
        compute = w.macs * constants.mac_pj[precision] * PJ
        register = w.macs * constants.operand_reads_per_mac * eb * constants.register_pj_per_byte * PJ
        memory = nbytes * per_byte * PJ
        out.append(LayerEnergy(w.name, compute * w.count, register * w.count, memory * w.count, level))
    return out


#: the proxy's power when the caller has no figure: a placeholder, and every report says so
PLACEHOLDER_POWER_W = 15.0
PLACEHOLDER_POWER_SOURCE = ("placeholder 15 W (a laptop-class CPU package, not measured); set power_w to a "
                            "datasheet TDP, a power meter's or RAPL's average")


def proxy_energy_j(latency_ms: float, power_w: float) -> float:
    """Measured latency x average power, in joules."""
    if not (math.isfinite(latency_ms) and latency_ms >= 0):
        raise CostModelError(f"latency_ms must be finite and >= 0, got {latency_ms!r}")
    if not (math.isfinite(power_w) and power_w > 0):
        raise CostModelError(f"power_w must be finite and > 0, got {power_w!r}")
    return latency_ms * 1e-3 * power_w


@dataclass(frozen=True)
class EnergyReport:
    precision: str
    op_model_j: float
    compute_j: float
    register_j: float
    memory_j: float
    proxy_j: float | None
    power_w: float | None
    power_source: str
    constants_source: str

    def to_dict(self) -> dict:
        return asdict(self)


def energy_report(layers: Sequence[LayerWorkload], *, precision: str = "fp32", latency_ms: float | None = None,
                  power_w: float | None = None, power_source: str = "",
                  constants: EnergyConstants = HOROWITZ_2014) -> EnergyReport:
    """Both estimates side by side: the op-level model always, the proxy when a latency and a power
    figure are given."""
    per = op_energy(layers, precision, constants)
    proxy = None
    if latency_ms is not None and power_w is not None:
        proxy = proxy_energy_j(latency_ms, power_w)
    return EnergyReport(precision, sum(p.total_j for p in per), sum(p.compute_j for p in per),
                        sum(p.register_j for p in per), sum(p.memory_j for p in per), proxy, power_w,
                        power_source or ("given by the caller" if power_w is not None else "none"),
                        constants.source)
