"""The results room: the results store and run directory (`store`), Pareto fronts and hypervolume
(`pareto`), the run's report (`report`) and the machine a figure was measured on (`machine`).

Importing the package is cheap: each name is imported from its module on first use.
"""

from __future__ import annotations

from schedules.lazy_exports import lazy_exports

_EXPORTS = {
    "Evaluation": "nacos.results.records",
    "Status": "nacos.results.records",
    "cpu_model": "nacos.results.machine",
    "machine_info": "nacos.results.machine",
    "tool_versions": "nacos.results.machine",
    "SENSES": "nacos.results.pareto",
    "Objective": "nacos.results.pareto",
    "as_objectives": "nacos.results.pareto",
    "best_under_budgets": "nacos.results.pareto",
    "crowding_distance": "nacos.results.pareto",
    "dominates": "nacos.results.pareto",
    "hypervolume": "nacos.results.pareto",
    "hypervolume_2d": "nacos.results.pareto",
    "non_dominated_sort": "nacos.results.pareto",
    "pareto_front": "nacos.results.pareto",
    "build_report": "nacos.results.report",
    "front_of": "nacos.results.report",
    "REFERENCE_POINTS": "nacos.results.report",
    "FINAL_STATUSES": "nacos.results.store",
    "KEY_COLUMNS": "nacos.results.store",
    "SCHEMA_VERSION": "nacos.results.store",
    "UNFINISHED_STATUSES": "nacos.results.store",
    "CandidateRecord": "nacos.results.store",
    "ResultsStore": "nacos.results.store",
    "RunDir": "nacos.results.store",
    "RunDirError": "nacos.results.store",
    "StoreError": "nacos.results.store",
    "StoreFinding": "nacos.results.store",
    "StoreLockedError": "nacos.results.store",
    "aside_path": "nacos.results.store",
    "atomic_write_text": "nacos.results.store",
    "verify_store": "nacos.results.store",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
