"""The results room: the results store and run directory (`store`), Pareto fronts and hypervolume
(`pareto`), the run's report (`report`) and the machine a figure was measured on (`machine`).

Importing the package is cheap: each name is imported from its module on first use.
"""

from __future__ import annotations

from schedules.lazy_exports import exported_names, lazy_exports

_EXPORTS = {
    "nacos_base.records": ("Evaluation", "Status"),
    "nacos.results.machine": ("cpu_model", "machine_info", "tool_versions"),
    "nacos.results.pareto": (
        "SENSES", "Objective", "as_objectives", "best_under_budgets", "crowding_distance", "dominates",
        "hypervolume", "hypervolume_2d", "non_dominated_sort", "pareto_front",
    ),
    "nacos.results.report": ("build_report", "front_of", "REFERENCE_POINTS"),
    "nacos.results.store": (
        "FINAL_STATUSES", "KEY_COLUMNS", "SCHEMA_VERSION", "UNFINISHED_STATUSES", "CandidateRecord",
        "ResultsStore", "RunDir", "RunDirError", "StoreError", "StoreFinding", "StoreLockedError", "aside_path",
        "atomic_write_text", "verify_store",
    ),
}

__all__ = exported_names(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
