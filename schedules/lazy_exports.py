"""Package exports resolved on first use, so that importing a package costs nothing until a name is used
(TVM, torch and onnxruntime are imported by the modules that need them, not by their package).

    __getattr__, __dir__ = lazy_exports(__name__, {"schedules.tuner": ("tune", "TuneSettings"), ...})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(package: str, modules: Mapping[str, Sequence[str]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(module `__getattr__`, module `__dir__`) for `package`: module -> the public names it defines."""
    table = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__


def exported_names(modules: Mapping[str, Sequence[str]]) -> list[str]:
    """The sorted public names of a `lazy_exports` table (a package's `__all__`)."""
    return sorted(name for names in modules.values() for name in names)
