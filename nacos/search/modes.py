"""Search modes as records: `get_mode("one-stage")` -> a frozen `SearchMode`, read by every part of nacos
that depends on the mode (the config's validation, `nacos search --mode`, `nacos export`, `nacos doctor`,
the search itself), so none of them lists mode names or dispatches on the mode with ``if``.

A mode says what a genome is (its genome space, made from the run's `ArchSpace`, and how a genome becomes
an `Architecture`), which latency backend measures it (a name in `nacos.backends.registry.BACKENDS`),
which backend `nacos export` builds its library with, and what the search may skip by cost model
(`screens`). Modes share the space, budgets, strategies and seed, so their runs stay comparable
(DESIGN.md, "Modes of search").

Adding a mode is one `SearchMode` record and one line in `MODES` (or `register_mode` from outside
nacos); docs/architecture.md says the same for strategies and backends. Importing this module imports
neither TVM nor torch: the one-stage genome space is built inside its function.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from nacos.errors import ConfigError

__all__ = ["MODES", "SCREENS", "SearchMode", "baseline_latency_choices", "get_mode", "make_latency_backend",
           "mode_names", "register_mode", "run_mode"]

#: what a mode may screen: "latency": `nacos.search.screening.LatencyScreen` lets the cost model skip the
#: tuning of a candidate that cannot matter (recorded as rejected, ``screened: true``)
SCREENS = ("latency",)


def same_space(space: Any) -> Any:
    """The genome space of a mode whose genome is the architecture: the `ArchSpace` itself."""
    return space


def same_genome(genome: Any) -> Any:
    """genome -> Architecture where the genome is the architecture."""
    return genome


def co_space(space: Any) -> Any:
    """The one-stage genome space: architecture x a schedule gene (an explicit `ScheduleConfig` or the
    database's best record) per distinct workload (`nacos.search.cospace`)."""
    from nacos.search.cospace import CoSpace
    from schedules.explicit.space import ScheduleSpace

    return CoSpace(space, ScheduleSpace())


def co_space_per_layer(space: Any) -> Any:
    """The one-stage genome space on an accelerator: a mapping rule (`ScheduleConfig`) per layer."""
    from nacos.search.cospace import CoSpace
    from schedules.explicit.space import ScheduleSpace

    return CoSpace(space, ScheduleSpace(), per_layer=True)


def co_genome_arch(genome: Any) -> Any:
    """The architecture of a one-stage `CoGenome`."""
    return genome.arch


@dataclass(frozen=True)
class SearchMode:
    """One search mode. The callables are module-level functions, so the record (and the evaluator
    that holds its `arch_of`) pickles for the executors that evaluate in other processes."""

    name: str
    #: one line, for `nacos search --help` and the docs
    description: str
    #: the latency backend that measures a candidate (a name in `nacos.backends.registry.BACKENDS`)
    backend: str
    #: the backend `nacos export` builds the candidate's library with: the schedules the search measured,
    #: never tuning anew
    export_backend: str
    #: ArchSpace -> the space the strategy samples, mutates and crosses (anything with sample / parse)
    genome_space: Callable[[Any], Any] = same_space
    #: genome -> Architecture
    arch_of: Callable[[Any], Any] = same_genome
    #: (``baseline_latency`` value, backend name) pairs where that option replaces `backend`
    backend_options: tuple[tuple[str, str], ...] = ()
    #: what the search may skip by cost model (names in `SCREENS`; ``tuning.screening`` turns it off)
    screens: tuple[str, ...] = ()
    #: the inner loop tunes each candidate's unseen workloads into ``tuning.database``, so the search
    #: says how much of the space `nacos pretune` already covered
    tunes: bool = False
    #: `nacos doctor` checks the config's ``tuning.database`` for a run of this mode (the TVM modes:
    #: the database is shared across their runs)
    checks_database: bool = False
    #: the backend on an accelerator target (``target: accel://HARDWARE``, a ZigZag model), where no TVM
    #: runs: nothing is tuned, screened or exported as a library there (`for_target`)
    accel_backend: str = ""
    #: the genome space there, when it differs (one-stage: a mapping rule per layer, each layer being
    #: mapped on its own, where TVM compiles one function per distinct workload)
    accel_genome_space: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.screens) - set(SCREENS))
        if unknown:
            raise ConfigError(f"mode {self.name}: unknown screen {unknown[0]!r}; choose from {SCREENS}")

    def backend_name(self, baseline_latency: str | None = None) -> str:
        """The backend that measures this mode's candidates, given the run's ``baseline_latency``."""
        return dict(self.backend_options).get(baseline_latency or "", self.backend)

    def screens_latency(self) -> bool:
        return "latency" in self.screens

    def for_target(self, target: str) -> SearchMode:
        """This mode as it runs on `target`: itself, or on ``accel://`` its accelerator backend (mapping
        searched, fixed or in the genome), with nothing tuned, screened or checked in a TVM database."""
        if not str(target).startswith("accel://"):
            return self
        if not self.accel_backend:
            raise ConfigError(f"target: mode {self.name} has no accelerator backend; use llvm, cuda or rpc://")
        return dataclasses.replace(self, backend=self.accel_backend, export_backend=self.accel_backend,
                                   backend_options=(), screens=(), tunes=False, checks_database=False,
                                   genome_space=self.accel_genome_space or self.genome_space)


BASELINE = SearchMode(
    name="baseline",
    description="compiler-agnostic HW-NAS: one fixed default TVM schedule for every layer "
                "(or onnxruntime, with baseline_latency: onnxruntime; or a MACs count, with macs)",
    backend="tvm-default-schedule",
    backend_options=(("default-schedule", "tvm-default-schedule"), ("onnxruntime", "onnxruntime"),
                     ("macs", "macs")),
    export_backend="tvm-default-schedule",
    accel_backend="zigzag-fixed",
)

TWO_STAGE = SearchMode(
    name="two-stage",
    description="evolutionary outer loop, and for each candidate the cost model lets through, its unseen "
                "workloads tuned into the shared database, then its tuned latency measured",
    backend="tvm-tuned",
    export_backend="tvm-database",   # the database as the search left it: an export never tunes
    screens=("latency",),
    tunes=True,
    checks_database=True,
    accel_backend="zigzag",
)

ONE_STAGE = SearchMode(
    name="one-stage",
    description="one genome holds the architecture and a schedule gene per distinct workload (an explicit "
                "config or the tuning database's best record), mutated and crossed together",
    backend="tvm-genome-schedules",
    export_backend="tvm-genome-schedules",
    genome_space=co_space,
    arch_of=co_genome_arch,
    checks_database=True,
    accel_backend="zigzag-genome",
    accel_genome_space=co_space_per_layer,
)

#: name -> record, in the order --help and error messages list them; one line per mode
MODES: dict[str, SearchMode] = {
    BASELINE.name: BASELINE,
    TWO_STAGE.name: TWO_STAGE,
    ONE_STAGE.name: ONE_STAGE,
}


def register_mode(mode: SearchMode) -> None:
    """Register `mode` under its name (for modes defined outside nacos)."""
    if not isinstance(mode, SearchMode):
        raise ConfigError(f"register_mode: {mode!r} is not a SearchMode")
    MODES[mode.name] = mode


def mode_names() -> tuple[str, ...]:
    return tuple(MODES)


def get_mode(name: str) -> SearchMode:
    """The mode registered under `name`; `ConfigError` naming the choices for an unknown one."""
    try:
        return MODES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown mode {name!r}; choose one of {mode_names()}") from None


def baseline_latency_choices() -> tuple[str, ...]:
    """Every value ``baseline_latency`` may take (the options of the registered modes, in order)."""
    out: list[str] = []
    for mode in MODES.values():
        out.extend(k for k, _ in mode.backend_options if k not in out)
    return tuple(out)


def run_mode(cfg: Any) -> SearchMode:
    """The mode a run configuration runs: its ``mode`` on its ``target`` (`SearchMode.for_target`), with
    the accelerator's sizing in its genome when ``accelerator_sizing`` asks for it (`with_sizing`)."""
    mode = get_mode(cfg.mode).for_target(cfg.target)
    return with_sizing(mode, cfg.target) if getattr(cfg, "accelerator_sizing", False) else mode


def with_sizing(mode: SearchMode, target: str) -> SearchMode:
    """`mode` whose genome also holds the accelerator's sizing (`nacos.search.sized_space`), for the
    array of the ``accel://`` `target` (its PE-array dimensions read off its hardware file)."""
    from functools import partial

    from costmodels.accelerator import read_hardware, resolve_hardware
    from costmodels.errors import CostModelError
    from nacos.search.sized_space import sized_arch, sized_space

    try:
        dims = len(read_hardware(resolve_hardware(str(target)[len("accel://"):])[0])["operational_array"]["sizes"])
    except (CostModelError, KeyError, TypeError) as exc:
        raise ConfigError(f"accelerator_sizing: cannot read the PE array of {target}: {exc}") from exc
    return dataclasses.replace(mode, genome_space=partial(sized_space, inner=mode.genome_space, dims=dims),
                               arch_of=partial(sized_arch, inner=mode.arch_of))


def make_latency_backend(cfg: Any, space: Any) -> tuple[Any, Any, Any]:
    """(genome space, genome -> Architecture, latency backend) for the run's mode: what its record names,
    the backend resolved by `nacos.backends.registry.get_backend` from ``baseline_latency``."""
    from nacos.backends.registry import get_backend

    mode = run_mode(cfg)
    return mode.genome_space(space), mode.arch_of, get_backend(mode.backend_name(cfg.baseline_latency), cfg, space)
