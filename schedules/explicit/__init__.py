"""The project's own schedule space (`ScheduleConfig` per conv / dense layer): the space and its fit
rules (`space`), applying a config to a TensorIR function (`apply`), and compiling a module
under explicit configs or searching them (`compile`). MetaSchedule is the searcher the default
search uses; this space stays for the one-stage genome and the NAAS-style vectors.

Importing the package is cheap: each name is imported from its module on first use.
"""

from __future__ import annotations

from schedules.lazy_exports import lazy_exports

_EXPORTS = {
    "apply_config": "schedules.explicit.apply",
    "main_block_kind": "schedules.explicit.apply",
    "layer_shape_of": "schedules.explicit.apply",
    "template_of": "schedules.explicit.apply",
    "MAIN_BLOCKS": "schedules.explicit.apply",
    "PARALLEL_MIN": "schedules.explicit.apply",
    "LayerKey": "schedules.explicit.compile",
    "layer_key": "schedules.explicit.compile",
    "schedule_module": "schedules.explicit.compile",
    "schedule_elementwise": "schedules.explicit.compile",
    "explicit_search": "schedules.explicit.compile",
    "ExplicitResult": "schedules.explicit.compile",
    "time_prim_func": "schedules.explicit.compile",
    "PARALLEL_ELEMENTS": "schedules.explicit.compile",
    "ScheduleSpace": "schedules.explicit.space",
    "LayerShape": "schedules.explicit.space",
    "check_fits": "schedules.explicit.space",
    "fits": "schedules.explicit.space",
    "GlobalPolicy": "schedules.explicit.space",
    "ConfigDoesNotFit": "schedules.explicit.space",
    "contiguous_axis": "schedules.explicit.space",
    "largest_divisor_at_most": "schedules.explicit.space",
    "VECTOR_LANES": "schedules.explicit.space",
    "MIN_LANES": "schedules.explicit.space",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
