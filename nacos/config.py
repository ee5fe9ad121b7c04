"""The run configuration: one frozen dataclass tree, loaded from YAML / TOML / flags and validated in
one place. Every error is a `ConfigError` whose message names the key (``budgets.latency_ms``).

The resolved configuration is saved beside the run (``config.json``), and a rerun of the same run
directory must resolve to the same configuration: that is how resume knows it continues the same search.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from nacos.errors import ConfigError
from nacos.search.modes import baseline_latency_choices, get_mode, mode_names

__all__ = ["RunConfig", "Budgets", "TuningConfig", "StrategyConfig", "load_config", "config_from_dict",
           "default_baseline_latency", "MODES", "SEARCHERS", "STRATEGIES", "OBJECTIVES"]

#: the search modes' names (`nacos.search.modes.MODES` holds the records; a mode registered later is accepted too)
MODES = mode_names()
#: schedule searchers of the inner loop: auto (MetaSchedule for the heavy unseen conv / dense tasks, the
#: explicit space for the rest), explicit (the ScheduleConfig space only), metaschedule (every task)
SEARCHERS = ("auto", "explicit", "metaschedule")
STRATEGIES = ("aging", "nsga2", "random")
#: what the two-stage screen predicts latency with (`TuningConfig.screen_with`)
SCREEN_WITH = ("table", "model")
#: the latency a TVM mode searches with (`TuningConfig.search_latency`)
SEARCH_LATENCY = ("tvm", "deployed")
#: objective name -> sense ("max" or "min")
OBJECTIVES = {"accuracy": "max", "latency_ms": "min", "peak_memory_mb": "min", "params": "min",
              "energy_mj": "min", "edp": "min", "accel_area": "min"}
_HUGE = 1e12


def _finite(name: str, value: float | None, low: float = 0.0, strict: bool = True) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or math.isinf(value):
        raise ConfigError(f"{name}: must be a finite number, got {value!r}")
    if (value <= low if strict else value < low) or value > _HUGE:
        raise ConfigError(f"{name}: must be {'>' if strict else '>='} {low:g} and <= {_HUGE:g}, got {value!r}")


@dataclass(frozen=True)
class Budgets:
    """Hard budgets reject a candidate; soft ones are reported as violation flags."""

    latency_ms: float | None = None                 # hard: tuned latency above it is rejected
    active_memory_budget_mb: float | None = None    # hard: peak activation memory above it is rejected
    param_memory_budget_mb: float | None = None     # hard: weights (MB at the run's precision) above it rejected
    memory_budgets_mb: tuple[float, ...] = (0.125, 0.25, 0.5)   # soft, reported
    latency_budgets_ms: tuple[float, ...] = ()      # soft, reported
    params_budget: int | None = None                # soft, reported
    energy_mj: float | None = None                  # hard: energy per inference above it is rejected
    edp: float | None = None                        # hard: energy x latency (mJ x ms) above it is rejected
    #: hard, with accelerator_sizing: the sized array's area (ZigZag's units: PEs x unit_area + on-chip memories)
    accel_area: float | None = None
    #: hard, derived: with no ``latency_ms``, this quantile (0 < q <= 1) of the latencies the initial random
    #: population measured becomes the latency budget of every later candidate (`nacos.search.
    #: population_budget`); None: no such budget. The embedded default job of `nacos search` sets 0.5: the
    #: most accurate network at most as slow as a typical one of the space.
    latency_from_population: float | None = None

    def __post_init__(self) -> None:
        _finite("budgets.latency_ms", self.latency_ms)
        _finite("budgets.latency_from_population", self.latency_from_population)
        if self.latency_from_population is not None:
            if self.latency_from_population > 1:
                raise ConfigError(f"budgets.latency_from_population: a quantile in (0, 1], got "
                                  f"{self.latency_from_population!r}")
            if self.latency_ms is not None:
                raise ConfigError("budgets.latency_from_population: a derived latency budget applies only where "
                                  "budgets.latency_ms is unset; give one or the other")
        _finite("budgets.active_memory_budget_mb", self.active_memory_budget_mb)
        _finite("budgets.param_memory_budget_mb", self.param_memory_budget_mb)
        for i, v in enumerate(self.memory_budgets_mb):
            _finite(f"budgets.memory_budgets_mb[{i}]", v)
        for i, v in enumerate(self.latency_budgets_ms):
            _finite(f"budgets.latency_budgets_ms[{i}]", v)
        _finite("budgets.params_budget", self.params_budget)
        _finite("budgets.energy_mj", self.energy_mj)
        _finite("budgets.edp", self.edp)
        _finite("budgets.accel_area", self.accel_area)

    #: the hard budgets, each named as the metric it bounds (a memory budget by its own name)
    HARD = ("latency_ms", "energy_mj", "edp", "accel_area", "active_memory_budget_mb", "param_memory_budget_mb")

    def hard(self) -> dict[str, float]:
        """The hard budgets this run sets, by name (`HARD`); the derived latency budget is not among them."""
        return {name: getattr(self, name) for name in self.HARD if getattr(self, name) is not None}


@dataclass(frozen=True)
class TuningConfig:
    """The inner loop: how much schedule search each unseen workload gets, and how latency is measured."""

    trials_per_workload: int = 8
    #: auto (default: of a candidate's conv / dense tasks the database has no record of, the heaviest,
    #: holding 80 % of their MACs and at most 4, get `metaschedule_trials` MetaSchedule trials each, tuned
    #: together so that its cost model sees over 100 samples; the rest `trials_per_workload` explicit
    #: configs), explicit (the ScheduleConfig space only: `trials_per_workload` sampled configs per
    #: workload, about a minute per new architecture here, far weaker schedules on pointwise and
    #: matrix-vector shapes) or metaschedule (every unseen task, `trials_per_workload` trials each).
    #: After `nacos pretune` of the space into `database`, a candidate has little or nothing left to tune.
    searcher: str = "auto"
    metaschedule_trials: int = 32
    database: str = ".nacos-cache/tuning-db"   # shared across runs and modes (relative: to the cwd)
    #: a pretuned database (`nacos pretune`) copied into `database` when that holds no records yet, so a
    #: first search starts from it (`schedules.database.seed_database`); "": none. The embedded default
    #: job of `nacos search` names the one committed for the default space (benchmarks/pretuned/)
    seed_from: str = ""
    #: two-stage: let the cost model (`nacos.search.screening`) skip the tuning of candidates that, even at the
    #: optimistic end of their predicted latency interval, are over the latency budget or dominated
    screening: bool = True
    screen_min_samples: int = 5      # measured candidates before the model screens anything
    screen_margin: float = 0.1       # the predicted low end is divided by (1 + margin) before comparing
    #: what predicts a candidate's latency for the screen: "table" (the tuning database's latency table,
    #: calibrated on this run's measured candidates: `nacos.search.table_screen`; a candidate with a task
    #: the database lacks goes to the model) or "model" (the genotype XGBoost model alone)
    screen_with: str = "table"
    table_min_samples: int = 3       # measured candidates before the calibrated table screens anything
    #: the table's screen_margin (its conformal interval is tight already); negative (> -1): the prediction
    #: is multiplied by 1 / (1 + margin) > 1, so only candidates clearly on the front are built
    table_margin: float = 0.0
    #: coverage of the table's conformal interval whose optimistic end the screen compares. 0 (the point
    #: prediction): build only the candidates whose predicted latency would put them on the front; 0.9:
    #: every one that could enter it at the interval's optimistic end. The default space, 120 s two-stage
    #: searches on a 2-core Xeon: 19 candidates without the table, 26 at 0.9, 41 at 0 (README, "Co-search runs")
    table_interval: float = 0.0
    #: a candidate the table finds dominated is recorded with its predicted latency ("predicted": ok, not
    #: built, ``latency_source: predicted``) or rejected ("rejected", as the cost model's screen does)
    table_screened_as: str = "predicted"
    warmup: int = 5
    repeats: int = 30
    threads: int = 0                 # 0: every core of this machine
    #: two-stage: each candidate's tuning runs in a worker process (`nacos.backends.tuning_worker`); one that runs
    #: longer than this is killed (its whole process group) and the candidate recorded as failed
    timeout_s: float = 1800.0
    #: address-space limit (RLIMIT_AS) of that worker in MiB, 0: none; over it, the worker's allocation
    #: fails and the candidate is recorded as failed. It counts address space, not resident memory: a
    #: worker tuning the tests' tiny model mapped about 1.3 GB here (600 fails already in TVM's import)
    worker_memory_mb: int = 0
    #: TVM modes: time onnxruntime beside each candidate's TVM latency (in a process of its own), so the
    #: row and the report say which runtime to deploy with (a fraction of a second per candidate)
    time_onnxruntime: bool = True
    #: the latency a TVM mode searches with: "tvm" (the compiled model's own) or "deployed" (the better of
    #: the compiled model and onnxruntime, timed beside it: what a careful user ships, and what
    #: `benchmarks/cosearch_vs_baseline.py` judges every mode on). With the latency table's screen, a
    #: two-stage candidate onnxruntime runs faster than its tuned build would, even at the table's optimistic
    #: end, is recorded with onnxruntime's measured latency and not built
    search_latency: str = "tvm"

    def __post_init__(self) -> None:
        if self.trials_per_workload < 1 or self.trials_per_workload > 100_000:
            raise ConfigError(f"tuning.trials_per_workload: must be in 1..100000, got {self.trials_per_workload}")
        if self.screen_min_samples < 2 or self.screen_min_samples > 100_000:
            raise ConfigError(f"tuning.screen_min_samples: must be in 2..100000, got {self.screen_min_samples}")
        _finite("tuning.screen_margin", self.screen_margin, strict=False)
        if self.screen_with not in SCREEN_WITH:
            raise ConfigError(f"tuning.screen_with: {self.screen_with!r}; choose one of {SCREEN_WITH}")
        _finite("tuning.table_margin", self.table_margin, low=-0.9, strict=False)
        if not isinstance(self.table_interval, (int, float)) or isinstance(self.table_interval, bool) \
                or not 0 <= self.table_interval < 1:
            raise ConfigError(f"tuning.table_interval: must be in [0, 1), got {self.table_interval!r}")
        if self.search_latency not in SEARCH_LATENCY:
            raise ConfigError(f"tuning.search_latency: {self.search_latency!r}; choose one of {SEARCH_LATENCY}")
        if self.search_latency == "deployed" and not self.time_onnxruntime:
            raise ConfigError("tuning.search_latency: deployed needs tuning.time_onnxruntime: true (the deployed "
                              "latency is the better of the compiled model and onnxruntime)")
        if self.table_screened_as not in ("predicted", "rejected"):
            raise ConfigError(f"tuning.table_screened_as: {self.table_screened_as!r}; choose predicted or rejected")
        if isinstance(self.table_min_samples, bool) or not isinstance(self.table_min_samples, int) \
                or not 2 <= self.table_min_samples <= 100_000:
            raise ConfigError(f"tuning.table_min_samples: must be an integer in 2..100000, "
                              f"got {self.table_min_samples!r}")
        if self.warmup < 0 or self.repeats < 1 or self.threads < 0:
            raise ConfigError("tuning.warmup >= 0, tuning.repeats >= 1 and tuning.threads >= 0 are required")
        if not self.database:
            raise ConfigError("tuning.database: must name a directory")
        if self.timeout_s is None:
            raise ConfigError("tuning.timeout_s: must be a finite number of seconds > 0, got None")
        _finite("tuning.timeout_s", self.timeout_s)
        if isinstance(self.worker_memory_mb, bool) or not isinstance(self.worker_memory_mb, int) \
                or not 0 <= self.worker_memory_mb <= 1 << 30:
            raise ConfigError(f"tuning.worker_memory_mb: must be 0 (no limit) or a size in MiB up to 2^30, "
                              f"got {self.worker_memory_mb!r}")
        if isinstance(self.metaschedule_trials, bool) or not 16 <= self.metaschedule_trials <= 100_000:
            raise ConfigError(f"tuning.metaschedule_trials: must be in 16..100000 (MetaSchedule needs at least 16 a "
                              f"task), got {self.metaschedule_trials!r}")
        if self.searcher not in SEARCHERS:
            raise ConfigError(f"tuning.searcher: must be one of {', '.join(SEARCHERS)}, got {self.searcher!r}")


@dataclass(frozen=True)
class StrategyConfig:
    name: str = "aging"
    population: int = 8
    sample_size: int = 3
    mutation_prob: float = 0.2

    def __post_init__(self) -> None:
        if self.name not in STRATEGIES:
            raise ConfigError(f"strategy.name: unknown strategy {self.name!r}; choose one of {STRATEGIES}")
        if self.population < 2 or self.population > 100_000:
            raise ConfigError(f"strategy.population: must be in 2..100000, got {self.population}")
        if not 1 <= self.sample_size <= self.population:
            raise ConfigError(f"strategy.sample_size: must be in 1..population, got {self.sample_size}")
        _finite("strategy.mutation_prob", self.mutation_prob)
        if self.mutation_prob > 1:
            raise ConfigError(f"strategy.mutation_prob: must be in (0, 1], got {self.mutation_prob}")


def default_baseline_latency(target: str) -> str:
    """What ``baseline_latency: auto`` means on `target`: onnxruntime on this CPU (``llvm``, the runtime a
    compiler-agnostic search would deploy with), the fixed default TVM schedule elsewhere (an RPC device
    or a GPU has no onnxruntime here; an accelerator has its fixed mapping rule)."""
    return "onnxruntime" if target == "llvm" else "default-schedule"


def _check_accel_target(target: str) -> None:
    """``accel://HARDWARE``: a shipped ZigZag array's name or an existing hardware YAML (its content is
    checked by ZigZag's validator when the backend is made, the key named on every error)."""
    from costmodels.accelerator import HARDWARE

    hardware = target[len("accel://"):]
    if hardware in HARDWARE:
        return
    if not hardware.endswith((".yaml", ".yml")):
        raise ConfigError(f"target: {target!r}: unknown accelerator {hardware!r}; choose one of "
                          f"{', '.join(sorted(HARDWARE))} or give accel://PATH.yaml")
    if not Path(hardware).is_file():
        raise ConfigError(f"target: {target!r}: no hardware file {hardware}")


@dataclass(frozen=True)
class RunConfig:
    mode: str = "two-stage"                # a name in nacos.search.modes.MODES
    #: baseline only: what the compiler-agnostic baseline measures: "onnxruntime" (its framework's
    #: runtime), "default-schedule" (TVM, one fixed schedule for every layer) or "macs" (a count, nothing
    #: timed): the modes' `backend_options`. "auto" (the default) resolves per target when the config is
    #: made: onnxruntime on llvm (what a user of this CPU would run), default-schedule on rpc:// and cuda
    #: (no onnxruntime runs on the device here) and on accel:// (the fixed mapping rule)
    baseline_latency: str = "auto"
    seed: int = 0
    trials: int = 6                        # candidates evaluated (rows in the results store)
    time_limit_s: float | None = None      # stop proposing after this many seconds
    #: llvm | cuda | rpc://HOST:PORT/KEY | accel://HARDWARE (a ZigZag array: a shipped name such as
    #: eyeriss-like, or a hardware YAML path; each mode then runs its accelerator backend). A device of
    #: another instruction set names its TVM target in the URL's query, beside the address:
    #: rpc://HOST:PORT/KEY?mtriple=aarch64-linux-gnu&mcpu=cortex-a72 (`schedules.targets.parse_rpc_spec`)
    target: str = "llvm"
    precision: str = "fp32"
    data: str = "mnist5k"
    checkpoint: str = "default"            # supernet checkpoint ("default": the packaged one)
    batch: int = 1
    objectives: tuple[str, ...] = ("accuracy", "latency_ms")
    space: Mapping[str, Any] = field(default_factory=dict)   # SpaceConfig overrides
    budgets: Budgets = field(default_factory=Budgets)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    #: where candidates are evaluated: local (this process), dask://HOST:PORT (a running Dask scheduler)
    #: or dask://local:N (N worker processes on this machine); may change between reruns of a run
    executor: str = "local"
    #: candidates evaluated at once (proposal n waits for proposal n - parallel); changes what is
    #: proposed, so it is fixed for the life of a run directory. Set it to about the number of workers.
    parallel: int = 1
    #: average power (W) of the device while it runs a candidate, for the energy proxy (measured latency
    #: x power, `energy_proxy_mj`); None: a placeholder that each row names (`energy_power_source`)
    power_w: float | None = None
    #: accel:// only: search the accelerator's sizing with the architecture (NAAS's third axis): PE array
    #: dimensions and on-chip buffer capacities from a grid around the target's array
    #: (`costmodels.accelerator_sizing`, `nacos.search.sized_space`); rows record the array and its area
    accelerator_sizing: bool = False

    def __post_init__(self) -> None:
        from nacos.executors import parse_executor_url

        parse_executor_url(self.executor)  # a bad URL is a ConfigError naming the key
        if self.parallel < 1 or self.parallel > 4096:
            raise ConfigError(f"parallel: must be in 1..4096 candidates at once, got {self.parallel}")
        try:
            mode = get_mode(self.mode)
        except ConfigError as exc:
            raise ConfigError(f"mode: {exc}") from None
        if self.baseline_latency not in ("auto", *baseline_latency_choices()):
            raise ConfigError(f"baseline_latency: must be {' or '.join(('auto', *baseline_latency_choices()))}, "
                              f"got {self.baseline_latency!r}")
        if self.baseline_latency == "auto":
            object.__setattr__(self, "baseline_latency", default_baseline_latency(self.target))
        if self.target.startswith("accel://"):
            _check_accel_target(self.target)
            if self.baseline_latency != "default-schedule":
                raise ConfigError(f"baseline_latency: {self.baseline_latency!r} applies to the CPU / GPU targets; "
                                  "on an accel:// target the baseline is one fixed mapping rule for every layer")
            mode = mode.for_target(self.target)
        if not isinstance(self.accelerator_sizing, bool):
            raise ConfigError(f"accelerator_sizing: must be true or false, got {self.accelerator_sizing!r}")
        if self.accelerator_sizing and not self.target.startswith("accel://"):
            raise ConfigError("accelerator_sizing: sizes an accelerator's PE array and buffers; it needs target "
                              f"accel://HARDWARE, got {self.target!r}")
        if not self.accelerator_sizing and ("accel_area" in self.objectives or self.budgets.accel_area is not None):
            raise ConfigError("objectives / budgets.accel_area: the area is that of a sized accelerator; set "
                              "accelerator_sizing: true (with target accel://HARDWARE)")
        if mode.backend_name(self.baseline_latency) == "macs" and (self.budgets.latency_ms is not None
                                                                   or self.budgets.latency_budgets_ms):
            raise ConfigError("budgets.latency_ms: baseline_latency macs counts MACs and times nothing, "
                              "so no budget in milliseconds applies (nor budgets.latency_budgets_ms); drop "
                              "it (the comparisons judge the picks on their deployed latency) or use "
                              "baseline_latency onnxruntime")
        _finite("power_w", self.power_w)
        if self.trials < 1 or self.trials > 1_000_000:
            raise ConfigError(f"trials: must be in 1..1000000, got {self.trials}")
        _finite("time_limit_s", self.time_limit_s)
        if self.batch < 1 or self.batch > 4096:
            raise ConfigError(f"batch: must be in 1..4096, got {self.batch}")
        if self.precision not in ("fp32", "int8"):
            raise ConfigError(f"precision: must be fp32 or int8, got {self.precision!r}")
        if self.precision == "int8" and mode.backend_name(self.baseline_latency) != "onnxruntime":
            raise ConfigError("precision: int8 runs only with mode baseline and baseline_latency onnxruntime "
                              "(TVM 0.27's Relax ONNX frontend cannot import quantized models: no "
                              "DequantizeLinear / QLinearConv converter)")
        if not (self.target in ("llvm", "cuda") or self.target.startswith(("rpc://", "accel://"))):
            raise ConfigError(f"target: must be llvm, cuda, rpc://HOST:PORT/KEY or accel://HARDWARE, "
                              f"got {self.target!r}")
        if self.target.startswith("rpc://"):
            from schedules.errors import ScheduleError
            from schedules.targets import parse_rpc_spec

            try:
                rpc = parse_rpc_spec(self.target)
            except ScheduleError as exc:
                raise ConfigError(str(exc)) from exc
            if dict(rpc.device).get("mtriple") and self.tuning.searcher == "explicit" and self.mode == "two-stage":
                raise ConfigError("tuning.searcher: explicit times its configs on this CPU, which cannot run code "
                                  f"for {dict(rpc.device)['mtriple']}: use auto or metaschedule (MetaSchedule's "
                                  "runner measures on the device)")
        if not self.objectives:
            raise ConfigError("objectives: at least one objective is needed")
        for o in self.objectives:
            if o not in OBJECTIVES:
                raise ConfigError(f"objectives: unknown objective {o!r}; choose from {sorted(OBJECTIVES)}")
        if len(set(self.objectives)) != len(self.objectives):
            raise ConfigError(f"objectives: listed twice in {list(self.objectives)}")
        if len(self.objectives) > 1 and self.strategy.name == "aging":
            pass  # aging evolution scalarises: accuracy under the hard budgets (documented in search.py)
        try:
            from archspace.space import SpaceConfig

            SpaceConfig.from_dict(dict(self.space))
        except ValueError as exc:
            raise ConfigError(f"space: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)


# ---------------------------------------------------------------------------------------------
# Loading: dict -> dataclass tree with the key named on every error
# ---------------------------------------------------------------------------------------------
def _convert(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: must be a list, got {type(value).__name__}")
        return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: must be a table / mapping, got {type(value).__name__}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: must be a string, got {value!r}")
        return value
    return value


def _build(cls: type, data: Any, prefix: str = "") -> Any:
    where = prefix or "config"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must be a table / mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        raise ConfigError(f"{prefix + '.' if prefix else ''}{unknown[0]}: unknown key; "
                          f"known keys{' of ' + prefix if prefix else ''} are {names}")
    kwargs = {k: _convert(v, hints[k], f"{prefix + '.' if prefix else ''}{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def config_from_dict(data: Mapping[str, Any]) -> RunConfig:
    return _build(RunConfig, data)


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text()
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml", ".json"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"{path}: a config must be .yaml, .yml, .toml or .json")
    except ConfigError:
        raise
    except Exception as exc:  # yaml.YAMLError, tomllib.TOMLDecodeError, UnicodeDecodeError (not text)
        raise ConfigError(f"{path}: not valid {path.suffix[1:].upper()} ({str(exc).splitlines()[0]})") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table / mapping")
    return data


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def load_config(path: Path | str | None = None, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """The file's settings (if any) with `overrides` (from flags, nested dicts) on top, validated."""
    data = _read_file(Path(path)) if path else {}
    try:
        return config_from_dict(_deep_merge(data, overrides or {}))
    except ConfigError as exc:
        if path:
            raise ConfigError(f"{path}: {exc}") from exc
        raise
