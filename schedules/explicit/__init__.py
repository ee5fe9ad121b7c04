"""The project's own schedule space (`ScheduleConfig` per conv / dense layer): the space and its fit
rules (`space`), applying a config to a TensorIR function (`apply`), and compiling a module
under explicit configs or searching them (`compile`). MetaSchedule is the searcher the default
search uses; this space stays for the one-stage genome and the NAAS-style vectors.

Importing the package is cheap: each name is imported from its module on first use.
"""

from __future__ import annotations

from schedules.lazy_exports import exported_names, lazy_exports

_EXPORTS = {
    "schedules.explicit.apply": (
        "apply_config", "main_block_kind", "layer_shape_of", "template_of", "MAIN_BLOCKS", "PARALLEL_MIN",
    ),
    "schedules.explicit.compile": (
        "LayerKey", "layer_key", "schedule_module", "schedule_elementwise", "explicit_search", "ExplicitResult",
        "time_prim_func", "PARALLEL_ELEMENTS",
    ),
    "schedules.explicit.space": (
        "ScheduleSpace", "LayerShape", "check_fits", "fits", "GlobalPolicy", "ConfigDoesNotFit", "contiguous_axis",
        "largest_divisor_at_most", "VECTOR_LANES", "MIN_LANES",
    ),
}

__all__ = exported_names(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
