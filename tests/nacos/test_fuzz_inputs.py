"""Fuzzing the inputs a user hands to nacos (hypothesis): run configs through the CLI, architecture JSON
through `Architecture.from_json` and the space check, ONNX files through `schedules.frontend.import_onnx`
and `archspace.stats`. Every input must be accepted or refused with the project's own error class and
a message (the CLI: exit code 2, an ``error:`` line, nothing written in the run directory), never a raw
traceback.

Budgets (max_examples, deadline=None, derandomized so a run is reproducible): configs 300 + 100 raw
files, architectures 500, ONNX 100 random files + 60 cut valid files + 150 mutated valid files + 10
unsupported operators (5 distinct) + 20 huge shapes, each through import_onnx and both stats functions
(explicit @example inputs come on top). Each test
prints how many inputs it tried (``pytest -s``) and asserts that it tried at least half its budget.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from archspace.architecture import Architecture
from archspace.errors import ArchSpaceError
from archspace.space import ArchSpace
from nacos.cli import main
from nacos.config import Budgets, RunConfig, StrategyConfig, TuningConfig
from schedules.errors import ScheduleError

FUZZ = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
COUNTS: dict[str, int] = {}


def _count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


def _report(name: str, budget: int) -> None:
    n = COUNTS.get(name, 0)
    outcomes = ", ".join(f"{k.split(': ', 1)[1]} {v}" for k, v in sorted(COUNTS.items()) if k.startswith(name + ": "))
    print(f"fuzz {name}: {n} inputs tried" + (f" ({outcomes})" if outcomes else ""))
    assert n >= budget // 2, f"{name}: only {n} of {budget} inputs were tried"


# ---------------------------------------------------------------------------------------------
# Run configs through `nacos search --dry-run`
# ---------------------------------------------------------------------------------------------
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 1, 2, 10**12, 10**13, 2**63, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0]),
    st.text(max_size=12), st.sampled_from(["llvm", "cuda", "rpc://h:1/k", "dask://local:2", "aging", "nsga2",
                                           "baseline", "two-stage", "one-stage", "accuracy", "latency_ms", ""]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)


def _section(cls) -> st.SearchStrategy:
    keys = list(cls.__dataclass_fields__)
    return st.fixed_dictionaries({}, optional={k: VALUES for k in keys}).flatmap(
        lambda d: st.dictionaries(st.text(max_size=10), VALUES, max_size=1).map(lambda extra: {**extra, **d}))


TOP = {k: VALUES for k in RunConfig.__dataclass_fields__}
TOP.update({"budgets": st.one_of(_section(Budgets), VALUES), "tuning": st.one_of(_section(TuningConfig), VALUES),
            "strategy": st.one_of(_section(StrategyConfig), VALUES),
            "space": st.one_of(st.fixed_dictionaries({}, optional={k: VALUES for k in (
                "resolutions", "width_mults", "kernel_sizes", "expand_ratios", "depths", "stage_strides",
                "stage_channels")}), VALUES)})
CONFIGS = st.fixed_dictionaries({}, optional=TOP).flatmap(
    lambda d: st.dictionaries(st.text(max_size=10), VALUES, max_size=1).map(lambda extra: {**extra, **d}))
NUMBER = st.one_of(st.integers(min_value=-5, max_value=10**13), st.floats(allow_nan=True, allow_infinity=True))
#: near-valid configs: right keys, values around the edges of their ranges (about half are accepted)
PLAUSIBLE = st.fixed_dictionaries({}, optional={
    "mode": st.sampled_from(["baseline", "two-stage", "one-stage", "Baseline"]),
    "trials": st.integers(min_value=-2, max_value=2_000_000), "seed": st.integers(min_value=-(2**70), max_value=2**70),
    "time_limit_s": st.one_of(st.none(), NUMBER), "batch": st.integers(min_value=-1, max_value=5000),
    "target": st.sampled_from(["llvm", "cuda", "rpc://10.0.0.5:9190/rk3399", "rpc://", "opencl"]),
    "objectives": st.lists(st.sampled_from(["accuracy", "latency_ms", "params", "energy_mj", "flops"]), max_size=3),
    "parallel": st.integers(min_value=-1, max_value=5000),
    "budgets": st.fixed_dictionaries({}, optional={"latency_ms": st.one_of(st.none(), NUMBER),
                                                   "memory_budgets_mb": st.lists(NUMBER, max_size=3)}),
    "tuning": st.fixed_dictionaries({}, optional={"trials_per_workload": st.integers(min_value=-1, max_value=200_000),
                                                  "screen_margin": NUMBER, "repeats": st.integers(-1, 100),
                                                  "timeout_s": NUMBER, "worker_memory_mb": st.integers(-1, 2**31)}),
    "strategy": st.fixed_dictionaries({}, optional={"name": st.sampled_from(["aging", "nsga2", "random", "rl"]),
                                                    "mutation_prob": NUMBER}),
    "space": st.fixed_dictionaries({}, optional={"resolutions": st.lists(st.integers(-1, 64), min_size=0, max_size=3),
                                                 "kernel_sizes": st.lists(st.integers(-1, 9), max_size=3)}),
})


def _dry_run(config_file: Path, run_dir: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["search", "--config", str(config_file), "--run-dir", str(run_dir), "--dry-run"])
    return code, err.getvalue()


def _check_cli(config_file: Path, run_dir: Path) -> int:
    code, err = _dry_run(config_file, run_dir)
    assert code in (0, 2), (code, err)
    if code == 2:
        assert err.startswith("nacos search: error: ") and len(err.strip()) > len("nacos search: error: "), err
        assert "Traceback" not in err
    assert not run_dir.exists()           # a dry run, and a refused config, write nothing
    return code


@settings(FUZZ, max_examples=300)
@given(st.one_of(CONFIGS, PLAUSIBLE))
@example({"trials": -3})
@example({"budgets": {"latency_ms": math.nan}})
@example({"time_limit_s": math.inf, "seed": 10**30})
@example({"strategy": {"population": 10**20}})
@example({"no_such_key": 1, "tuning": {"database": 3}})
@example({"space": {"resolutions": ["a", 1], "width_mults": [{}]}})
def _fuzz_config(data):
    _count("config")
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "run.yaml"
        f.write_text(yaml.safe_dump(data))
        _count(f"config: {'accepted' if _check_cli(f, Path(tmp) / 'run') == 0 else 'refused'}")


@settings(FUZZ, max_examples=100)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)),
       st.sampled_from([".yaml", ".toml", ".json", ".yml"]))
@example(b"\xff\xfe\x00trials: 3", ".yaml")
@example(b"trials = 3\n[tuning\n", ".toml")
@example(b"a: &a [*a, *a]\n", ".yaml")
@example(b"!!python/object/apply:os.system ['true']\n", ".yaml")
@example(b"trials: 1" + b"1" * 5000 + b"\n", ".yaml")
def _fuzz_config_file(raw, suffix):
    _count("config-file")
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / f"run{suffix}"
        f.write_bytes(raw)
        _count(f"config-file: {'accepted' if _check_cli(f, Path(tmp) / 'run') == 0 else 'refused'}")


def test_run_configs_through_the_cli():
    _fuzz_config()
    _report("config", 300)


def test_raw_config_files_through_the_cli():
    _fuzz_config_file()
    _report("config-file", 100)


# ---------------------------------------------------------------------------------------------
# Architecture JSON
# ---------------------------------------------------------------------------------------------
SPACE = ArchSpace()
SMALL_INT = st.one_of(st.integers(min_value=-3, max_value=12), st.sampled_from([10**40, 2**63]))
ARCH_VALUE = st.one_of(SMALL_INT, st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
                       st.text(max_size=4))


@st.composite
def perturbed(draw):
    """A member of the space, maybe with one value moved to a neighbour or a wrong type."""
    doc = SPACE.sample(draw(st.integers(min_value=0, max_value=2**32))).to_dict()
    if draw(st.booleans()):
        key = draw(st.sampled_from(sorted(doc)))
        if key in ("resolution", "width_mult"):
            doc[key] = draw(st.one_of(ARCH_VALUE, st.sampled_from([doc[key] + 1, doc[key] * 2, -doc[key]])))
        else:
            stage = draw(st.integers(min_value=0, max_value=len(doc[key]) - 1))
            doc[key][stage] = draw(st.one_of(ARCH_VALUE, st.just([] if key != "depths" else 9)))
    return doc


@st.composite
def architectures(draw):
    """Mostly well-formed genotypes with one or more fields off: out-of-space choices, wrong types,
    lengths that disagree, missing and unknown fields."""
    n_stages = draw(st.integers(min_value=0, max_value=5))
    depths = [draw(st.one_of(st.integers(min_value=0, max_value=4), ARCH_VALUE)) for _ in range(n_stages)]

    def per_stage():
        out = []
        for d in depths:
            k = d if isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 4 else 1
            k += draw(st.sampled_from([0, 0, 0, 1, -1]))
            out.append(draw(st.one_of(st.lists(st.one_of(st.sampled_from([1, 3, 5, 7, 4, 9]), ARCH_VALUE),
                                               min_size=max(k, 0), max_size=max(k, 0)), ARCH_VALUE)))
        return out

    doc = {"resolution": draw(st.one_of(st.sampled_from([16, 24, 28, 32, 33]), ARCH_VALUE)),
           "width_mult": draw(st.one_of(st.sampled_from([0.75, 1.0, 0.5]), ARCH_VALUE)),
           "depths": draw(st.one_of(st.just(depths), ARCH_VALUE)),
           "kernel_sizes": per_stage(), "expand_ratios": per_stage()}
    for key in draw(st.lists(st.sampled_from(list(doc)), max_size=2)):
        doc.pop(key, None)
    if draw(st.booleans()):
        doc[draw(st.text(min_size=1, max_size=6))] = draw(ARCH_VALUE)
    return doc


@settings(FUZZ, max_examples=500)
@given(st.one_of(architectures().map(json.dumps), perturbed().map(json.dumps), st.text(max_size=80),
                 st.binary(max_size=80)))
@example("[" * 100_000)
@example('{"resolution": ' + "1" * 5000 + "}")
@example('{"resolution":28,"width_mult":Infinity,"depths":[1,1,1,1],"kernel_sizes":[[3],[3],[3],[3]],'
         '"expand_ratios":[[3],[3],[3],[3]]}')
@example('{"resolution":28,"width_mult":1.0,"depths":[1,1,1,1],"kernel_sizes":[[3],[3],[3],[3]],'
         '"expand_ratios":[[3],[3],[3],[3]]}')
def _fuzz_architecture(text):
    _count("architecture")
    try:
        arch = SPACE.parse(text)
    except ArchSpaceError as exc:
        assert str(exc)
        _count("architecture: refused")
        return
    _count("architecture: accepted")
    # accepted: a member of the space, and a JSON round trip to the same genotype and id
    assert SPACE.contains(arch)
    assert all(math.isfinite(x) for x in (arch.width_mult, arch.resolution))
    again = Architecture.from_json(arch.to_json())
    assert again == arch and again.id == arch.id
    json.loads(arch.to_json(), parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_architecture_json():
    _fuzz_architecture()
    _report("architecture", 500)


# ---------------------------------------------------------------------------------------------
# ONNX files
# ---------------------------------------------------------------------------------------------
def _model(op: str = "Conv", shape=(1, 3, 8, 8)):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    if op == "Conv":
        w = numpy_helper.from_array(np.ones((4, shape[1], 3, 3), np.float32), "w")
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["c"], ["r"]),
                 helper.make_node("GlobalAveragePool", ["r"], ["y"])]
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0], 4, 1, 1])
        graph = helper.make_graph(nodes, "g", [x], [y], [w])
    else:
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


VALID = None


def _valid() -> bytes:
    global VALID
    if VALID is None:
        VALID = _model()
    return VALID


def _check_onnx(blob: bytes, name: str) -> None:
    from archspace.stats import onnx_layer_stats, peak_memory
    from schedules.frontend import import_onnx

    _count(name)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(blob)
        try:
            import_onnx(path)
            _count(f"{name}: imported")
        except ScheduleError as exc:
            assert str(exc).startswith(str(path)), exc
            _count(f"{name}: refused by import_onnx")
        for fn in (onnx_layer_stats, peak_memory):
            try:
                out = fn(path)
            except ArchSpaceError as exc:
                assert str(exc)
                continue
            numbers = [s.macs for s in out] + [s.params for s in out] if isinstance(out, list) else [out.bytes]
            assert all(n >= 0 for n in numbers), out


ONNX_BUDGET = {"onnx-random": 100, "onnx-cut": 60, "onnx-mutated": 150, "onnx-unsupported": 10, "onnx-huge": 20}


@settings(FUZZ, max_examples=ONNX_BUDGET["onnx-random"])
@given(st.binary(max_size=400))
def _fuzz_onnx_random(blob):
    _check_onnx(blob, "onnx-random")


@settings(FUZZ, max_examples=ONNX_BUDGET["onnx-cut"])
@given(st.floats(min_value=0.0, max_value=0.999))
def _fuzz_onnx_cut(fraction):
    blob = _valid()
    _check_onnx(blob[: int(len(blob) * fraction)], "onnx-cut")


@settings(FUZZ, max_examples=ONNX_BUDGET["onnx-mutated"])
@given(st.lists(st.tuples(st.floats(min_value=0.0, max_value=0.999), st.integers(0, 255)), min_size=1, max_size=6))
def _fuzz_onnx_mutated(edits):
    blob = bytearray(_valid())
    for where, value in edits:
        blob[int(len(blob) * where)] = value
    _check_onnx(bytes(blob), "onnx-mutated")


@settings(FUZZ, max_examples=ONNX_BUDGET["onnx-unsupported"])
@given(st.sampled_from(["Celu", "LpNormalization", "Det", "RandomNormalLike", "HardSwish"]))
def _fuzz_onnx_unsupported(op):
    _count("onnx-unsupported")
    from schedules.frontend import import_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(_model(op, (1, 4, 4)))
        try:
            import_onnx(path)
        except ScheduleError as exc:
            assert op in str(exc) and str(path) in str(exc), exc
        else:
            assert op == "HardSwish"      # a control: an operator TVM has


@settings(FUZZ, max_examples=ONNX_BUDGET["onnx-huge"])
@given(st.integers(min_value=2**10, max_value=2**62), st.integers(min_value=1, max_value=2**40))
@example(2**62, 2**40)
@example(2**14, 2**2)
def _fuzz_onnx_huge(side, batch):
    from schedules.frontend import MAX_INPUT_ELEMENTS, import_onnx

    blob = _model("Conv", (batch, 3, side, side)) if side * side < 2**62 else _model("Relu", (batch, 3, side))
    _check_onnx(blob, "onnx-huge")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(blob)
        n = batch * 3 * side * (side if side * side < 2**62 else 1)
        if n > MAX_INPUT_ELEMENTS:
            with pytest.raises(ScheduleError, match=r"elements\) is refused"):
                import_onnx(path)


@pytest.mark.parametrize("name, fuzz", [("onnx-random", _fuzz_onnx_random), ("onnx-cut", _fuzz_onnx_cut),
                                        ("onnx-mutated", _fuzz_onnx_mutated),
                                        ("onnx-unsupported", _fuzz_onnx_unsupported), ("onnx-huge", _fuzz_onnx_huge)])
def test_onnx_files(name, fuzz):
    """Random bytes, a valid file cut short or with bytes changed, an operator TVM lacks, a huge shape."""
    fuzz()
    _report(name, ONNX_BUDGET[name])
