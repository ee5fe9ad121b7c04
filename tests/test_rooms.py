"""The rooms of ../shared/DESIGN.md: each package exports its public API from its `__init__`, every
exported name resolves to the module that defines it, and importing a room costs no TVM or torch (the
command line starts fast; `nacos --help` must not wait for a compiler)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("nacos.search", "nacos.results", "nacos.tools", "nacos.executors", "nacos.backends",
         "nacos.strategies", "schedules.explicit", "schedules")


def _packages() -> list[str]:
    return sorted(".".join(p.parent.relative_to(ROOT).parts) for wing in ("nacos", "schedules")
                  for p in (ROOT / wing).rglob("__init__.py"))


def test_every_room_is_listed_here():
    assert set(_packages()) - {"nacos", "nacos.cli"} == set(ROOMS)


@pytest.mark.parametrize("room", ROOMS)
def test_each_exported_name_resolves(room):
    package = importlib.import_module(room)
    assert package.__all__, f"{room} exports nothing"
    for name in package.__all__:
        value = getattr(package, name)
        assert value is not None, (room, name)
        assert name in dir(package)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        package.not_a_name  # noqa: B018


def test_importing_the_rooms_imports_no_compiler_and_no_torch():
    code = (f"import sys; import {', '.join(ROOMS)}; "
            "bad = [m for m in ('torch', 'tvm', 'onnxruntime', 'xgboost') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
