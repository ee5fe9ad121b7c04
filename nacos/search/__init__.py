"""The search room: the generic loop (`loop`), candidate evaluation (`evaluation`), the two-stage
screen (`screening`), the one-stage co-space (`cospace`), int8 candidates (`int8`), the search modes
as records (`modes`), the space's task enumeration for pretuning (`space_tasks`) and the co-search
that composes them (`run`: `run_search(cfg, run_dir)`).

Importing the package is cheap: each name is imported from its module on first use.
"""

from __future__ import annotations

from schedules.lazy_exports import exported_names, lazy_exports

_EXPORTS = {
    "nacos.search.cospace": ("CoGenome", "CoSpace", "ScheduleSpaceLike"),
    "nacos.search.evaluation": (
        "Evaluation", "LatencyResult", "LatencyBackend", "CandidateEvaluator", "budget_flags",
    ),
    "nacos.search.int8": ("quantize_candidate", "onnx_accuracy"),
    "nacos.search.loop": ("SearchSummary", "front_records", "objective_values"),
    "nacos.search.modes": (
        "MODES", "SCREENS", "SearchMode", "baseline_latency_choices", "get_mode", "make_latency_backend",
        "mode_names", "register_mode", "run_mode",
    ),
    "nacos.search.run": ("run_search", "build_search", "report_run"),
    "nacos.search.screening": ("ScreenDecision", "LatencyScreen", "arch_workloads"),
    "nacos.search.space_tasks": ("enumerate_space_tasks", "space_task_file", "enumeration_architectures"),
}

__all__ = exported_names(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
