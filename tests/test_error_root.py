"""One error root: every exception class a wing defines inherits `nacos_base.errors.NacosBaseError`, and the
input errors (`UserError`) are what the command line maps to exit 2, in one place."""

from __future__ import annotations

import ast
import importlib

import pytest

from nacos_base.errors import NacosBaseError, UserError
from tests.test_layering import ROOT, WINGS, module_name

#: private control-flow signals that never leave their module
PRIVATE_OK = {("schedules.pretune", "_DeadlinePassed")}


def exception_classes() -> list[tuple[str, str]]:
    """(module, class) of every class in the wings whose bases name an exception (…Error, …Exception,
    or a class found so earlier), found on the source with `ast`."""
    found = []
    for wing in WINGS:
        for path in sorted((ROOT / wing).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.ClassDef):
                    continue
                bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
                if any(b.endswith(("Error", "Exception", "Exhausted", "Corrupted", "Failed", "DoesNotFit"))
                       for b in bases) or node.name.endswith("Error"):
                    found.append((module_name(path, ROOT), node.name))
    return found


def test_the_scan_finds_the_wings_errors():
    names = {name for _, name in exception_classes()}
    assert {"ArchSpaceError", "ScheduleError", "RecordError", "CostModelError", "NacosError", "DiskFullError",
            "StoreError", "ExportCheckFailed", "ConfigDoesNotFit"} <= names


@pytest.mark.parametrize(("module", "name"), exception_classes())
def test_every_error_inherits_the_root(module, name):
    if (module, name) in PRIVATE_OK:
        pytest.skip("private signal, caught where raised")
    cls = getattr(importlib.import_module(module), name)
    if not isinstance(cls, type) or not issubclass(cls, BaseException):
        pytest.skip(f"{name} is not an exception")
    assert issubclass(cls, NacosBaseError), f"{module}.{name} does not inherit nacos_base.errors.NacosBaseError"


def test_the_cli_maps_every_input_error_to_exit_2_and_a_broken_export_is_not_one():
    from archspace.errors import ArchSpaceError
    from costmodels.errors import CostModelError
    from nacos.errors import DiskFullError, NacosError, user_errors
    from nacos.tools.export import ExportCheckFailed
    from schedules.errors import ScheduleError
    from schedules.records import RecordError

    for cls in (ArchSpaceError, ScheduleError, RecordError, CostModelError, NacosError):
        assert issubclass(cls, UserError) and issubclass(cls, ValueError)
        assert isinstance(cls("x"), user_errors())
    for cls in (DiskFullError, ExportCheckFailed):
        assert not isinstance(cls("x"), user_errors())
