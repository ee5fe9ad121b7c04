"""The layering of ../shared/DESIGN.md, checked on the source: a lower wing never imports a higher one.

    nacos/                      imports all below
      archspace/  schedules/    import no other wing
      costmodels/               reads only plain data: `schedules.records`, `archspace.precision`
    nacos_base/                 the floor (error root, shared records): imports no first-party package

No package module imports `benchmarks`, `tests` or `scripts`, and the tuning worker (a subprocess that
tunes one candidate's workloads) imports nothing of `nacos`. Every import counts, the ones inside
functions and the relative ones too (parsed with `ast`, nothing is imported). An exception is one entry
in `ALLOWED` with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WINGS = ("nacos_base", "archspace", "schedules", "costmodels", "nacos")
OUTSIDE = ("benchmarks", "tests", "scripts")  # never imported by a package module

#: wing -> the top-level names it must not import (first-party wings and, for costmodels, the heavy or
#: unsafe third-party ones: its models are XGBoost JSON, never pickles, and it needs no compiler)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "nacos_base": ("archspace", "schedules", "costmodels", "nacos", *OUTSIDE),
    "archspace": ("schedules", "costmodels", "nacos", *OUTSIDE),
    "schedules": ("archspace", "costmodels", "nacos", *OUTSIDE),
    "costmodels": ("nacos", *OUTSIDE, "tvm", "pickle", "cloudpickle"),
    "nacos": OUTSIDE,
}
#: the only modules of the two other lower wings that costmodels may read: plain data that crosses the
#: boundary (the frozen LayerWorkload, ScheduleConfig, Measurement records; the bytes per precision)
COSTMODELS_MAY_READ = ("schedules.records", "archspace.precision")

#: (module path relative to the repository, imported top-level name) -> why it is allowed
ALLOWED: dict[tuple[str, str], str] = {
    ("costmodels/ms_cost_model.py", "tvm"): "the MetaSchedule cost-model adapter subclasses TVM's PyCostModel "
                                            "and reads MetaSchedule's features; costmodels/__init__ loads it "
                                            "lazily, so the rest of costmodels stays free of TVM",
}


def module_name(path: Path, root: Path) -> str:
    """`costmodels/ranker.py` -> `costmodels.ranker`; a package's `__init__.py` -> the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `path`, at any depth; relative imports resolved
    against the module's package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                out.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            else:
                out.append((node.lineno, node.module or ""))
    return out


def violations(root: Path, wing: str) -> list[str]:
    """Every import in `root/wing` that its rules forbid and `ALLOWED` does not excuse."""
    found = []
    for path in sorted((root / wing).rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for line, name in imports_of(path, root):
            top = name.split(".")[0]
            if (rel, top) in ALLOWED:
                continue
            if top in FORBIDDEN[wing]:
                found.append(f"{rel}:{line} imports {name}")
            elif wing == "costmodels" and top in ("schedules", "archspace") and name not in COSTMODELS_MAY_READ:
                found.append(f"{rel}:{line} imports {name} (costmodels may read only {', '.join(COSTMODELS_MAY_READ)})")
            elif wing == "nacos" and path.stem == "tuning_worker" and top == "nacos":
                found.append(f"{rel}:{line} imports {name} (the tuning worker imports nothing above schedules)")
    return found


@pytest.mark.parametrize("wing", WINGS)
def test_lower_wings_never_import_higher_ones(wing):
    assert sorted((ROOT / wing).rglob("*.py")), f"no modules under {wing}/: the check would pass vacuously"
    assert violations(ROOT, wing) == []


def test_the_tuning_worker_is_checked():
    assert [p for p in (ROOT / "nacos").rglob("tuning_worker.py")], "nacos' tuning worker moved or renamed"


def test_every_allowed_entry_is_still_needed():
    """An exception that no longer matches an import is stale: remove it."""
    for (rel, top), why in ALLOWED.items():
        assert why
        assert any(name.split(".")[0] == top for _, name in imports_of(ROOT / rel, ROOT)), (rel, top)


def test_the_check_finds_imports_in_functions_relative_ones_and_the_allowed_exception(tmp_path):
    (tmp_path / "schedules" / "sub").mkdir(parents=True)
    (tmp_path / "schedules" / "__init__.py").write_text("")
    (tmp_path / "schedules" / "sub" / "__init__.py").write_text("from . import ok\n")
    (tmp_path / "schedules" / "sub" / "deep.py").write_text(
        "import json\n\n\ndef late():\n    from nacos.results.store import ResultsStore\n    return ResultsStore\n")
    (tmp_path / "costmodels").mkdir()
    (tmp_path / "costmodels" / "a.py").write_text(
        "from schedules.records import LayerWorkload\nfrom schedules import tuner\nimport tvm\n"
        "from archspace.precision import PRECISION_BYTES\nimport archspace.stats\n")
    (tmp_path / "costmodels" / "ms_cost_model.py").write_text("import tvm\nfrom ..tests import helper\n")
    (tmp_path / "nacos" / "backends").mkdir(parents=True)
    worker = tmp_path / "nacos" / "backends" / "tuning_worker.py"
    worker.write_text("import schedules.tuner\nfrom nacos import store\n")

    assert imports_of(tmp_path / "schedules" / "sub" / "__init__.py", tmp_path) == [(1, "schedules.sub")]
    assert violations(tmp_path, "schedules") == ["schedules/sub/deep.py:5 imports nacos.results.store"]
    assert violations(tmp_path, "costmodels") == [
        "costmodels/a.py:2 imports schedules (costmodels may read only schedules.records, archspace.precision)",
        "costmodels/a.py:3 imports tvm",
        "costmodels/a.py:5 imports archspace.stats (costmodels may read only schedules.records, "
        "archspace.precision)",
        "costmodels/ms_cost_model.py:2 imports tests",
    ]
    assert violations(tmp_path, "nacos") == [
        "nacos/backends/tuning_worker.py:2 imports nacos (the tuning worker imports nothing above schedules)"]


#: the one module of benchmarks/ a test may import: the shared harness, which the harness tests check
TESTS_MAY_IMPORT = ("benchmarks.common",)


def benchmark_imports(root: Path) -> list[str]:
    """Every import of a benchmark script (`benchmarks.X` other than the harness) in `root/tests`: a test
    runs a benchmark as its users do, `python -m benchmarks.X` in a process of its own (the `run_benchmark`
    fixture), and takes what it needs from the library or from the result file the script writes."""
    found = []
    for path in sorted((root / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                # `from benchmarks import inner_loop` imports the script benchmarks.inner_loop
                names = ([f"{node.module}.{alias.name}" for alias in node.names] if node.module == "benchmarks"
                         else [node.module])
            for name in names:
                if name.split(".")[0] == "benchmarks" and name not in TESTS_MAY_IMPORT:
                    found.append(f"{path.relative_to(root).as_posix()}:{node.lineno} imports {name}")
    return found


def test_no_test_imports_a_benchmark_script():
    assert sorted((ROOT / "tests" / "benchmarks").glob("test_*.py")), "no benchmark tests: vacuous check"
    assert benchmark_imports(ROOT) == []


def test_the_benchmark_import_check_finds_every_form(tmp_path):
    (tmp_path / "tests" / "sub").mkdir(parents=True)
    (tmp_path / "tests" / "sub" / "test_x.py").write_text(
        "import json\nfrom benchmarks.common import ResultFile\nfrom benchmarks import common\n\n\n"
        "def test_a():\n    from benchmarks.inner_loop import main\n    from benchmarks import supernet, common\n"
        "    import benchmarks.tabular_benchmark as tb\n")
    assert benchmark_imports(tmp_path) == [
        "tests/sub/test_x.py:7 imports benchmarks.inner_loop",
        "tests/sub/test_x.py:8 imports benchmarks.supernet",
        "tests/sub/test_x.py:9 imports benchmarks.tabular_benchmark",
    ]
