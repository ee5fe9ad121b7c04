"""The search room: the generic loop (`loop`), candidate evaluation (`evaluation`), the two-stage
screen (`screening`), the one-stage co-space (`cospace`), int8 candidates (`int8`), the search modes
as records (`modes`), the space's task enumeration for pretuning (`space_tasks`) and the co-search
that composes them (`run`: `run_search(cfg, run_dir)`).

Importing the package is cheap: each name is imported from its module on first use.
"""

from __future__ import annotations

from schedules.lazy_exports import lazy_exports

_EXPORTS = {
    "CoGenome": "nacos.search.cospace",
    "CoSpace": "nacos.search.cospace",
    "ScheduleSpaceLike": "nacos.search.cospace",
    "Evaluation": "nacos.search.evaluation",
    "LatencyResult": "nacos.search.evaluation",
    "LatencyBackend": "nacos.search.evaluation",
    "CandidateEvaluator": "nacos.search.evaluation",
    "budget_flags": "nacos.search.evaluation",
    "quantize_candidate": "nacos.search.int8",
    "onnx_accuracy": "nacos.search.int8",
    "SearchSummary": "nacos.search.loop",
    "front_records": "nacos.search.loop",
    "objective_values": "nacos.search.loop",
    "MODES": "nacos.search.modes",
    "SCREENS": "nacos.search.modes",
    "SearchMode": "nacos.search.modes",
    "baseline_latency_choices": "nacos.search.modes",
    "get_mode": "nacos.search.modes",
    "make_latency_backend": "nacos.search.modes",
    "mode_names": "nacos.search.modes",
    "register_mode": "nacos.search.modes",
    "run_mode": "nacos.search.modes",
    "run_search": "nacos.search.run",
    "build_search": "nacos.search.run",
    "report_run": "nacos.search.run",
    "ScreenDecision": "nacos.search.screening",
    "LatencyScreen": "nacos.search.screening",
    "arch_workloads": "nacos.search.screening",
    "enumerate_space_tasks": "nacos.search.space_tasks",
    "space_task_file": "nacos.search.space_tasks",
    "enumeration_architectures": "nacos.search.space_tasks",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
