"""Search modes as records (`nacos.search.modes`): every registered mode makes its genome space, turns a genome
into an architecture, names backends the backend registry resolves, is accepted by the config and the CLI,
and is what the search, `nacos export` and the screen read; an unknown mode is refused naming the choices;
a new mode is one record and one registry line."""

import dataclasses
import json
import pickle
import random

import pytest

from archspace import ArchSpace, SpaceConfig
from archspace.architecture import Architecture
from nacos.backends import Backend, backend_class
from nacos.config import config_from_dict
from nacos.errors import ConfigError
from nacos.search.modes import MODES, SearchMode, get_mode, mode_names, register_mode

SPACE = {"resolutions": [16], "width_mults": [1.0], "kernel_sizes": [3], "expand_ratios": [3], "depths": [1],
         "stem_channels": 8, "stage_channels": [8], "stage_strides": [2], "head_channels": 16}


@pytest.fixture(scope="module")
def space():
    return ArchSpace(SpaceConfig.from_dict(SPACE))


def _cfg(tmp_path, **extra):
    return config_from_dict({"space": SPACE, "tuning": {"database": str(tmp_path / "db")}, **extra})


def test_the_registry_holds_the_three_modes_in_order():
    assert mode_names() == ("baseline", "two-stage", "one-stage")
    assert all(MODES[name].name == name for name in mode_names())


@pytest.mark.parametrize("name", mode_names())
def test_each_mode_samples_a_genome_of_its_space_and_reads_it_back(name, space):
    mode = get_mode(name)
    genome_space = mode.genome_space(space)
    genome = genome_space.sample(random.Random(3))
    arch = mode.arch_of(genome)
    assert isinstance(arch, Architecture) and space.contains(arch)
    # what a results-store row holds, parsed back as the screen and `nacos export` parse it
    again = genome_space.parse(genome.to_json())
    assert again == genome and mode.arch_of(again) == arch
    mutated = genome_space.mutate(genome, random.Random(4), prob=1.0)
    assert space.contains(mode.arch_of(mutated))


@pytest.mark.parametrize("name", mode_names())
def test_each_mode_names_backends_the_backend_registry_resolves(name):
    mode = get_mode(name)
    names = {mode.backend, mode.export_backend, *(b for _, b in mode.backend_options)}
    for backend in names:
        cls = backend_class(backend)
        assert issubclass(cls, Backend) and cls.name == backend


@pytest.mark.parametrize("name", mode_names())
def test_the_config_accepts_each_mode_and_the_search_gets_its_records_backend(name, space, tmp_path):
    from nacos.search.modes import make_latency_backend

    mode = get_mode(name)
    cfg = _cfg(tmp_path, mode=name)
    assert cfg.mode == name
    genome_space, arch_of, backend = make_latency_backend(cfg, space)
    assert backend.name == mode.backend_name(cfg.baseline_latency)
    assert backend.name == (mode.backend if name != "baseline" else "onnxruntime")  # baseline_latency auto on llvm
    assert arch_of is mode.arch_of
    assert isinstance(arch_of(genome_space.sample(random.Random(0))), Architecture)


def test_baseline_latency_onnxruntime_picks_onnxruntime_and_only_there_int8_runs(space, tmp_path):
    from nacos.search.modes import make_latency_backend

    cfg = _cfg(tmp_path, mode="baseline", baseline_latency="onnxruntime", precision="int8")
    assert make_latency_backend(cfg, space)[2].name == "onnxruntime"
    # the option is the baseline's: another mode keeps its own backend
    two = _cfg(tmp_path, mode="two-stage", baseline_latency="onnxruntime")
    assert make_latency_backend(two, space)[2].name == "tvm-tuned"
    with pytest.raises(ConfigError, match="precision: int8 runs only with mode baseline and baseline_latency"):
        _cfg(tmp_path, mode="two-stage", baseline_latency="onnxruntime", precision="int8")
    with pytest.raises(ConfigError) as err:
        _cfg(tmp_path, baseline_latency="tvm")
    assert str(err.value) == "baseline_latency: must be auto or default-schedule or onnxruntime or macs, got 'tvm'"


def test_baseline_latency_auto_resolves_per_target(tmp_path):
    """The default baseline measures what a compiler-agnostic search would deploy with on that target:
    onnxruntime on this CPU, the fixed TVM schedule on an RPC device, a GPU or an accelerator; an explicit
    value is kept, and the resolved value is what the stored config says (so a rerun resolves alike)."""
    from nacos.config import RunConfig, default_baseline_latency

    assert RunConfig().baseline_latency == "onnxruntime"
    assert _cfg(tmp_path, mode="baseline").baseline_latency == "onnxruntime"
    assert _cfg(tmp_path, mode="baseline", baseline_latency="auto").to_dict()["baseline_latency"] == "onnxruntime"
    assert _cfg(tmp_path, mode="baseline", baseline_latency="default-schedule").baseline_latency == "default-schedule"
    assert _cfg(tmp_path, mode="baseline", target="rpc://127.0.0.1:9190/pi").baseline_latency == "default-schedule"
    assert _cfg(tmp_path, mode="baseline", target="accel://eyeriss-like").baseline_latency == "default-schedule"
    assert [default_baseline_latency(t) for t in ("llvm", "cuda")] == ["onnxruntime", "default-schedule"]


def test_an_unknown_mode_is_refused_naming_the_choices(tmp_path):
    with pytest.raises(ConfigError) as err:
        _cfg(tmp_path, mode="three-stage")
    assert str(err.value) == f"mode: unknown mode 'three-stage'; choose one of {mode_names()}"
    assert "('baseline', 'two-stage', 'one-stage')" in str(err.value)
    with pytest.raises(ConfigError, match="unknown mode 'three-stage'; choose one of"):
        get_mode("three-stage")


def test_the_cli_offers_the_registered_modes_and_refuses_others(capsys):
    from nacos.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["search", "--mode", "three-stage"])
    assert exit_.value.code == 2
    stderr = capsys.readouterr().err
    assert "invalid choice: 'three-stage'" in stderr and all(name in stderr for name in mode_names())
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for mode in MODES.values():
        assert " ".join(mode.description.split()[:4]) in help_text


@pytest.mark.parametrize("name", mode_names())
def test_export_and_the_screen_read_the_record(name, space, tmp_path):
    from nacos.results.store import RunDir
    from nacos.search.run import _screen
    from nacos.tools.export import _export_backend_name, _genome_and_arch

    mode = get_mode(name)
    cfg = _cfg(tmp_path, mode=name)
    genome = mode.genome_space(space).sample(random.Random(1))
    got, arch = _genome_and_arch(cfg, space, {"genome": json.loads(genome.to_json())})
    assert got == genome and arch == mode.arch_of(genome)
    assert _export_backend_name(cfg) == mode.export_backend
    run = RunDir.prepare(tmp_path / "run")
    screen = _screen(cfg, space, run)
    assert (screen is not None) == ("latency" in mode.screens)
    off = dataclasses.replace(cfg, tuning=dataclasses.replace(cfg.tuning, screening=False))
    assert _screen(off, space, run) is None


def test_the_records_pickle_for_executors_in_other_processes():
    for mode in MODES.values():
        again = pickle.loads(pickle.dumps(mode))
        assert again == mode and again.arch_of is mode.arch_of


def test_a_new_mode_is_one_record_and_one_registry_line(space, tmp_path):
    """A mode registered from outside: the config, the CLI and the search take it with no other change."""
    from nacos.cli import build_parser
    from nacos.search.modes import make_latency_backend

    mode = SearchMode(name="onnx-only", description="architecture only, timed with onnxruntime",
                      backend="onnxruntime", export_backend="tvm-default-schedule")
    register_mode(mode)
    try:
        cfg = _cfg(tmp_path, mode="onnx-only")
        assert make_latency_backend(cfg, space)[2].name == "onnxruntime"
        assert build_parser().parse_args(["search", "--mode", "onnx-only"]).mode == "onnx-only"
    finally:
        MODES.pop("onnx-only", None)
    with pytest.raises(ConfigError, match="unknown mode 'onnx-only'"):
        _cfg(tmp_path, mode="onnx-only")


def test_a_mode_that_screens_something_unknown_or_is_no_record_is_refused():
    with pytest.raises(ConfigError, match="unknown screen 'memory'"):
        SearchMode(name="x", description="x", backend="onnxruntime", export_backend="onnxruntime",
                   screens=("memory",))
    with pytest.raises(ConfigError, match="is not a SearchMode"):
        register_mode("baseline")  # type: ignore[arg-type]
