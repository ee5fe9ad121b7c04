"""The co-search: a run configuration in, a results store and a report out.

`run_search(cfg, run_dir)` composes the wings (DESIGN.md): the space and supernet of `archspace`, the
latency of `schedules` (through a backend chosen by the mode), the cost models of `costmodels`, and
the generic loop / strategies / store of this package. Rerunning it on the same run directory resumes.

The mode (``baseline``, ``two-stage``, ``one-stage``: same space, budgets and seed make them comparable)
is a record of `nacos.search.modes`: its genome space, genome -> architecture, latency backend and what it may
screen; nothing here dispatches on its name.

Aging evolution optimises the first objective (accuracy) under the hard budgets; NSGA-II all of them.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nacos.config import OBJECTIVES, RunConfig
from nacos.errors import ConfigError, DiskFullError, NacosError, disk_full_cause
from schedules.records import LayerWorkload

__all__ = ["run_search", "build_search", "report_run"]


# may change between reruns (they do not change what is proposed; `parallel` does, so it may not):
# top-level keys, and "section.key" for a key of a section
_EXTENDABLE = ("trials", "time_limit_s", "executor", "tuning.timeout_s", "tuning.worker_memory_mb",
               "tuning.seed_from")


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    """`config` (a resolved config's dict) without the keys that may change between reruns."""
    out = json.loads(json.dumps(config))
    for key in _EXTENDABLE:
        section, _, name = key.rpartition(".")
        node = out.get(section) if section else out
        if isinstance(node, dict):
            node.pop(name, None)
    return out


def _resolved(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config.json with today's defaults filled in (keys added since the run started), so that
    a run started before a key existed resumes; as saved when it no longer loads (then it differs)."""
    from nacos.config import config_from_dict

    try:
        return config_from_dict({"parallel": 1, **saved}).to_dict()   # runs from before `parallel`: 1
    except ConfigError:
        return saved


def _strategy_settings(cfg: RunConfig) -> dict[str, Any]:
    s = cfg.strategy
    if s.name == "aging":
        return {"population": s.population, "sample_size": s.sample_size, "mutation_prob": s.mutation_prob}
    if s.name == "nsga2":
        return {"population": s.population, "mutation_prob": s.mutation_prob}
    return {}


def _objectives(cfg: RunConfig) -> list[tuple[str, str]]:
    return [(o, OBJECTIVES[o]) for o in cfg.objectives]


def build_search(cfg: RunConfig, run_dir: Path):
    """(run directory, strategy, evaluator, genome space) for `cfg`; nothing is evaluated yet."""
    from archspace.data import load_dataset
    from archspace.space import ArchSpace, SpaceConfig
    from archspace.training import load_supernet
    from nacos.results.store import RunDir
    from nacos.search.evaluation import CandidateEvaluator
    from nacos.search.modes import make_latency_backend
    from nacos.strategies import make_strategy

    space = ArchSpace(SpaceConfig.from_dict(dict(cfg.space)))
    RunDir.check(run_dir)  # refuse a foreign directory before loading anything heavy
    supernet = load_supernet(None if cfg.checkpoint == "default" else cfg.checkpoint, space)
    dataset = load_dataset(cfg.data)
    if (dataset.in_channels, dataset.num_classes) != (supernet.in_channels, supernet.num_classes):
        raise ConfigError(f"data: {cfg.data} has {dataset.in_channels} channels / {dataset.num_classes} classes, "
                          f"the supernet {supernet.in_channels} / {supernet.num_classes}")
    _check_reachable(cfg, space, supernet)
    run = RunDir.prepare(run_dir)
    saved = run.config_path
    current = cfg.to_dict()
    if saved.exists():
        previous = _identity(_resolved(_read_saved_config(saved)))
        now = _identity(current)
        # trials and the time limit may grow between reruns: they do not change what is proposed
        diff = sorted(k for k in set(previous) | set(now) if previous.get(k) != now.get(k))
        if diff:
            raise ConfigError(f"{run.root}: was started with another configuration (differs in {diff}); "
                              "resume with the same settings or use a new --run-dir")
    from nacos.results.store import atomic_write_text

    atomic_write_text(saved, cfg.to_json() + "\n")
    _seed_database(cfg)
    genome_space, arch_of, backend = make_latency_backend(cfg, space)
    strategy = make_strategy(cfg.strategy.name, genome_space, cfg.seed, objectives=_objectives(cfg),
                             **_strategy_settings(cfg))
    evaluator = CandidateEvaluator(cfg, run.artifacts_dir, supernet, dataset, backend, arch_of=arch_of,
                                   energy=_energy_fn(cfg), screen=_screen(cfg, space, run, supernet, backend))
    return run, strategy, evaluator, genome_space


def _seed_database(cfg: RunConfig) -> None:
    """``tuning.seed_from``: a fresh ``tuning.database`` starts as a copy of that pretuned database."""
    if not cfg.tuning.seed_from:
        return
    import sys

    from schedules.database import seed_database
    from schedules.errors import ScheduleError

    try:
        copied = seed_database(cfg.tuning.seed_from, cfg.tuning.database)
    except ScheduleError as exc:
        raise ConfigError(f"tuning.seed_from: {exc}") from exc
    if copied:
        print(f"nacos search: tuning database {cfg.tuning.database} seeded from the pretuned {cfg.tuning.seed_from}",
              file=sys.stderr)


def _check_reachable(cfg: RunConfig, space, supernet) -> None:
    """Refuse, before anything is written, a hard memory budget no architecture of the space can meet:
    peak activation memory only grows with resolution, width, depth and expand ratio, so the space's
    smallest architecture bounds it from below. (A latency budget has no such cheap bound: candidates
    over it are rejected one by one, with the reason, and the report says none met it.)"""
    limit, weights_limit = cfg.budgets.active_memory_budget_mb, cfg.budgets.param_memory_budget_mb
    if limit is None and weights_limit is None:
        return
    import tempfile

    from archspace.export import export_onnx
    from archspace.stats import PRECISION_BYTES, onnx_layer_stats, peak_memory

    smallest = space.smallest()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(smallest, Path(tmp) / "smallest.onnx", batch=cfg.batch, supernet=supernet, check=False)
        mb = peak_memory(path, cfg.precision).bytes / (1024 * 1024)
        weights_mb = sum(s.params for s in onnx_layer_stats(path)) * PRECISION_BYTES[cfg.precision] / (1024 * 1024)
    if weights_limit is not None and weights_limit < weights_mb:
        raise ConfigError(f"budgets.param_memory_budget_mb: {weights_limit:g} MB is below the weights of the space's "
                          f"smallest architecture ({weights_mb:.4f} MB at {cfg.precision}): no architecture of the "
                          "space can meet it")
    if limit is not None and limit < mb:
        raise ConfigError(f"budgets.active_memory_budget_mb: {limit:g} MB is below the peak activation memory of the "
                          f"space's smallest architecture ({mb:.4f} MB at {cfg.precision}, batch {cfg.batch}): no "
                          "architecture of the space can meet it")


def _screen(cfg: RunConfig, space, run, supernet: Any = None, backend: Any = None):
    """The screen of a mode that screens latency (two-stage), its history rebuilt from the rows already
    committed: the latency table calibrated on the run's measured rows (``tuning.screen_with: table``, over
    the backend's tuning database), wrapping the genotype cost model, or that model alone; None when the
    mode screens nothing or ``tuning.screening`` is off."""
    from nacos.search.modes import run_mode

    mode = run_mode(cfg)
    if not mode.screens_latency() or not cfg.tuning.screening:
        return None
    from nacos.search.screening import LatencyScreen

    screen = LatencyScreen(space, _objectives(cfg), latency_budget_ms=cfg.budgets.latency_ms,
                           min_samples=cfg.tuning.screen_min_samples, margin=cfg.tuning.screen_margin,
                           batch=cfg.batch, seed=cfg.seed, model_dir=run.costmodel_dir / "arch_latency",
                           in_channels=getattr(supernet, "in_channels", 1),
                           num_classes=getattr(supernet, "num_classes", 10))
    if cfg.tuning.screen_with == "table" and getattr(backend, "reads_database", False):
        from nacos.search.table_screen import TableScreen

        screen = TableScreen(screen, backend.db, backend.target, min_samples=cfg.tuning.table_min_samples,
                             margin=cfg.tuning.table_margin, price=cfg.tuning.table_screened_as == "predicted",
                             level=cfg.tuning.table_interval,
                             onnxruntime=(backend.onnxruntime_timing if cfg.tuning.search_latency == "deployed"
                                          else None))
    store = run.open_store(readonly=True) if run.store_path.exists() else None
    if store is not None:
        parse = mode.genome_space(space).parse
        try:
            for record in store.completed():
                screen.observe_record(record, parse, mode.arch_of)
        finally:
            store.close()
    return screen


def _observer(evaluator, genome_space, arch_of, budget=None):
    """The loop's `on_record`: each committed row teaches the screen and the derived latency budget
    (driver side, in commit order); once the budget is fixed, the screen screens against it too."""
    screen = getattr(evaluator, "screen", None)
    if screen is None and budget is None:
        return None

    def on_record(record) -> None:
        if budget is not None:
            budget.observe_record(record)
            if screen is not None and budget.budget_ms is not None:
                screen.latency_budget_ms = budget.budget_ms
        if screen is not None:
            screen.observe_record(record, genome_space.parse, arch_of)

    return on_record


def _population_budget(cfg: RunConfig, store, evaluator):
    """The latency budget derived from the initial population (``budgets.latency_from_population``),
    rebuilt from the rows already committed (and handed to the screen once fixed); None when the config
    asks for none."""
    q = cfg.budgets.latency_from_population
    if q is None:
        return None
    from nacos.search.population_budget import PopulationLatencyBudget

    budget = PopulationLatencyBudget.rebuilt(q, cfg.strategy.population,
                                             ((r.seq, r.metrics) for r in store.completed()))
    screen = getattr(evaluator, "screen", None)
    if screen is not None and budget.budget_ms is not None:
        screen.latency_budget_ms = budget.budget_ms
    return budget


_KIND = {"Conv": "conv2d", "Gemm": "dense", "MatMul": "dense"}


def layer_workloads(layers: Sequence[dict[str, Any]]) -> list[LayerWorkload]:
    """Plain `LayerWorkload` records (fp32 bytes of inputs, weights and output) from layer statistics
    (`archspace.stats.LayerStat.to_dict()`), for the analytical cost models."""
    import numpy as np

    out = []
    for i, layer in enumerate(layers):
        if not layer.get("macs") and not layer.get("output_shape"):
            continue
        elements = layer.get("input_elements", 0) + layer["params"] + int(np.prod(layer["output_shape"] or [0]))
        out.append(LayerWorkload(name=layer["name"] or f"layer{i}", op_kind=_KIND.get(layer["op_type"], "elementwise"),
                                 input_shapes=(), output_shape=tuple(layer["output_shape"]), macs=int(layer["macs"]),
                                 bytes=4 * int(elements)))
    return out


def _energy_fn(cfg: RunConfig):
    """Both energy estimates of `costmodels.energy` for a candidate: ``energy_mj``, the operation-level
    model (MACs and bytes moved per memory level and precision, Horowitz's constants), and
    ``energy_proxy_mj``, its measured latency x the device's average power (``power_w``, else a
    placeholder that ``energy_power_source`` names); the proxy only where the latency is a time."""
    from costmodels.energy import PLACEHOLDER_POWER_SOURCE, PLACEHOLDER_POWER_W, energy_report

    power, source = ((cfg.power_w, "power_w of the run config") if cfg.power_w is not None
                     else (PLACEHOLDER_POWER_W, PLACEHOLDER_POWER_SOURCE))

    def energy(metrics: dict[str, Any]) -> dict[str, Any]:
        timed = metrics.get("latency_unit") != "MMAC"     # the macs proxy counts, it does not time
        report = energy_report(layer_workloads(metrics["layers"]), precision=cfg.precision,
                               latency_ms=metrics.get("latency_ms") if timed else None,
                               power_w=power if timed else None, power_source=source if timed else "")
        d = report.to_dict()
        out: dict[str, Any] = {k: v for k, v in d.items() if isinstance(v, (int, float))}
        out["energy_mj"] = report.op_model_j * 1e3
        out["energy_constants"] = report.constants_source
        if report.proxy_j is not None:
            out["energy_proxy_mj"] = report.proxy_j * 1e3
            out["energy_power_source"] = source
        return out

    return energy


def refuse_missing_device(cfg: RunConfig) -> None:
    """`ConfigError` (exit 2) when the config's target needs a device this machine lacks (cuda), or names
    an accelerator ZigZag cannot read (a hardware YAML its validator refuses, ZigZag not installed)."""
    if cfg.target.startswith("accel://"):
        from costmodels.accelerator import AcceleratorModel
        from costmodels.errors import CostModelError
        from nacos.backends.accelerator import parse_accel_target

        try:
            AcceleratorModel(parse_accel_target(cfg.target))
        except CostModelError as exc:
            raise ConfigError(f"target: {exc}") from exc
    if cfg.target == "cuda":
        from schedules.targets import cuda_missing

        missing = cuda_missing()
        if missing is not None:
            raise ConfigError(f"target: cuda needs a CUDA device: {missing}")


def run_search(cfg: RunConfig, run_dir: Path | str, progress: bool = True) -> dict[str, Any]:
    """Run or resume the search of `cfg` in `run_dir`, then write its report. Returns the summary."""
    from nacos.search import loop

    refuse_missing_device(cfg)  # before the run directory exists: nothing is left behind
    run, strategy, evaluator, genome_space = build_search(cfg, Path(run_dir))
    pretune = _pretune_status(cfg, evaluator)
    if progress and pretune is not None:
        import sys

        print(f"nacos search: {pretune['note']}", file=sys.stderr)
    store = run.open_store()
    try:
        budget = _population_budget(cfg, store, evaluator)
        summary = loop.run_search(strategy, evaluator, store, cfg.trials, cfg.time_limit_s, progress=progress,
                                  on_record=_observer(evaluator, genome_space, evaluator.arch_of, budget),
                                  executor=cfg.executor, parallel=cfg.parallel,
                                  judge=budget.judge if budget is not None else None)
    finally:
        store.close()
    try:
        report = report_run(run.root)
    except Exception as exc:
        cause = disk_full_cause(exc)
        if cause is None:
            raise
        raise DiskFullError(f"disk full while writing the report in {run.report_dir} ({type(cause).__name__}: "
                            f"{cause}); the search itself is complete and committed in {run.root}: free some space "
                            f"and run `nacos report {run.root}`") from exc
    return {**summary.to_dict(), "evaluated": summary.completed, "report_dir": str(run.report_dir),
            "front": report["front"], "hypervolume": report["hypervolume"], "phases": report.get("phases"),
            **({"pretune": {k: v for k, v in pretune.items() if k != "coverage"}} if pretune else {})}


def _pretune_status(cfg: RunConfig, evaluator) -> dict[str, Any] | None:
    """A mode that tunes (two-stage): whether the tuning database was pretuned for this space (`nacos
    pretune`), and its coverage."""
    from nacos.search.modes import run_mode

    backend = evaluator.latency_backend
    if not run_mode(cfg).tunes or getattr(backend, "db", None) is None:
        return None
    from archspace.space import ArchSpace, SpaceConfig
    from nacos.search.space_tasks import pretune_status

    supernet = evaluator.supernet
    return pretune_status(backend.db, ArchSpace(SpaceConfig.from_dict(dict(cfg.space))), backend.target,
                          in_channels=supernet.in_channels, num_classes=supernet.num_classes, batch=cfg.batch)


def report_run(run_dir: Path | str, baseline_dir: Path | str | None = None) -> dict[str, Any]:
    """(Re)make the report of a run directory from its store."""
    from nacos.config import config_from_dict
    from nacos.results.pareto import as_objectives
    from nacos.results.report import build_report
    from nacos.results.store import RunDir

    run = RunDir.existing(run_dir)
    if not run.config_path.exists():
        raise NacosError(f"{run.root}: has no config.json; was the search ever started?")
    saved = _read_saved_config(run.config_path)
    try:
        cfg = config_from_dict(saved)
    except ConfigError as exc:
        raise ConfigError(f"{run.config_path}: {exc}") from exc
    rows = _rows(run)
    baseline_rows = _rows(RunDir.existing(baseline_dir)) if baseline_dir else None

    def layers_of(row: dict[str, Any]) -> list[dict[str, Any]]:
        from archspace.stats import onnx_layer_stats

        name = str(row["metrics"].get("arch_id", row["id"]))
        if not _PLAIN_NAME.match(name):  # a crafted store must not make the report read files elsewhere
            return []
        path = run.artifacts_dir / name / "model.onnx"
        return [s.to_dict() for s in onnx_layer_stats(path)] if path.exists() else []

    phases = search_phases(rows, cfg)
    hard_latency = phases["hard_budgets"].get("latency_ms")   # the config's, or the one derived from the rows
    budgets = list(cfg.budgets.latency_budgets_ms) + ([hard_latency] if hard_latency else [])
    return build_report(rows, as_objectives(_objectives(cfg)), run.report_dir, latency_budgets=budgets,
                        baseline_rows=baseline_rows, layers_of=layers_of, title=f"{cfg.mode} search",
                        phases=phases)


def search_phases(rows: list[dict[str, Any]], cfg: RunConfig) -> dict[str, Any]:
    """How many candidates each phase of the search evaluated, and what drove it (the report's ``phases``).

    The strategies propose random samples until their first population is full (aging evolution, NSGA-II),
    then children of the population: the first ``strategy.population`` rows are the random phase, the rest
    evolved, ``generations`` = rows / population. Of the evaluated rows: how many the screen rejected before
    their build and tuning (by the latency table or the cost model), how well the table predicted the rows it
    let through, how many tuned workloads the database lacked, how many were measured (ok) with nothing
    to tune."""
    n = len(rows)
    pop = cfg.strategy.population
    random_phase = n if cfg.strategy.name == "random" else min(n, pop)
    metrics = [r["metrics"] for r in rows]
    tuned_rows = [isinstance(m.get("latency_tuned_tasks"), (int, float)) and m["latency_tuned_tasks"] > 0
                  for m in metrics]
    built = [m.get("latency_source") is None for m in metrics]   # priced rows carry the source of their latency
    measured_only = sum(r["status"] == "ok" and not t and b for r, t, b in zip(rows, tuned_rows, built))
    hard = cfg.budgets.hard()
    derived = derived_latency_budget(rows, cfg)
    if derived is not None:
        hard["latency_ms"] = derived
    by = [m.get("latency_predicted_by") for m in metrics if m.get("screened")]
    # the compiled model's own time (under ``search_latency: deployed`` latency_ms may be onnxruntime's)
    own = [m.get("latency_median_ms", m.get("latency_ms")) for m in metrics]
    table_rows = [ms / m["latency_predicted_ms"] for r, m, ms, b in zip(rows, metrics, own, built)
                  if r["status"] == "ok" and b and m.get("latency_predicted_by") == "table"
                  and isinstance(ms, (int, float)) and isinstance(m.get("latency_predicted_ms"), float)
                  and m["latency_predicted_ms"] > 0]
    objectives = list(cfg.objectives)
    driven = (f"{objectives[0]} alone (aging evolution is single-objective; the others are reported)"
              if cfg.strategy.name == "aging" else " and ".join(objectives))
    return {"strategy": cfg.strategy.name, "population": pop, "evaluated": n, "random_initial": random_phase,
            **({"latency_budget_from_population": cfg.budgets.latency_from_population}
               if cfg.budgets.latency_from_population is not None else {}),
            "evolved": n - random_phase, "generations": round(n / pop, 2),
            "screened": sum(bool(m.get("screened")) for m in metrics),
            "screened_by": {"table": by.count("table"), "model": by.count("model")},
            "priced_by_table": sum(m.get("latency_source") == "predicted" for m in metrics),
            # deployed latency: onnxruntime beat the tuned build's optimistic prediction, so it was not built
            "deployed_with_onnxruntime_unbuilt": sum(m.get("latency_source") == "onnxruntime" for m in metrics),
            "search_latency": cfg.tuning.search_latency,
            # measured / predicted by the calibrated table, over the rows it let through (its error, seen)
            **({"table_measured_over_predicted_median": statistics.median(table_rows),
                "table_predicted_rows": len(table_rows)} if table_rows else {}),
            "tuned": sum(tuned_rows),
            "compiled_and_measured_only": measured_only, "driven_by": driven, "hard_budgets": hard}


def derived_latency_budget(rows: list[dict[str, Any]], cfg: RunConfig) -> float | None:
    """The latency budget `nacos.search.population_budget` derived from the run's first rows (None: the
    config derives none, or the initial population is not complete yet)."""
    if cfg.budgets.latency_from_population is None:
        return None
    from nacos.search.population_budget import PopulationLatencyBudget

    return PopulationLatencyBudget.rebuilt(cfg.budgets.latency_from_population, cfg.strategy.population,
                                           ((r["seq"], r["metrics"]) for r in rows)).budget_ms


_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$")


def _read_saved_config(path: Path) -> dict[str, Any]:
    """A run directory's config.json, or a ConfigError naming it (damaged: see `nacos doctor`)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable config ({exc}); `nacos doctor` checks a run directory") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a config (the top level is not a mapping)")
    return data


def _rows(run) -> list[dict[str, Any]]:
    store = run.open_store(readonly=True)
    try:
        return [r.to_dict() for r in store.completed()]
    finally:
        store.close()
