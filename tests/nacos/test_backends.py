"""Latency backends (`nacos.backends`): the registry, and a conformance suite every registered backend
must pass on a real tiny model (real TVM builds, real onnxruntime): build then measure gives what
latency() gives, and a model that does not build is a failure as data."""

import math
import random

import pytest

from archspace import ArchSpace, SpaceConfig
from nacos.backends import BACKENDS, Backend, Built, backend_class, backend_names, get_backend
from nacos.config import config_from_dict
from nacos.errors import ConfigError

SPACE = {"resolutions": [16], "width_mults": [1.0], "kernel_sizes": [3], "expand_ratios": [3], "depths": [1],
         "stem_channels": 8, "stage_channels": [8], "stage_strides": [2], "head_channels": 16}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(config, arch space, architecture, its ONNX file, a one-stage genome of it, a file that is no ONNX)."""
    from archspace.export import export_onnx
    from nacos.search.cospace import CoSpace
    from schedules.explicit.space import ScheduleSpace

    tmp = tmp_path_factory.mktemp("backends")
    space = ArchSpace(SpaceConfig.from_dict(SPACE))
    cospace = CoSpace(space, ScheduleSpace())
    genome = cospace.sample(random.Random(0))
    onnx_path = export_onnx(genome.arch, tmp / "model.onnx", space=space, check=False)
    bad = tmp / "bad.onnx"
    bad.write_bytes(b"this is not an ONNX model")
    cfg = config_from_dict({"space": SPACE, "tuning": {
        "database": str(tmp / "db"), "searcher": "explicit", "trials_per_workload": 2, "repeats": 3, "warmup": 1,
        "time_onnxruntime": False}})
    return cfg, space, genome, onnx_path, bad


def _genome_for(name, genome):
    return genome if name in ("tvm-genome-schedules", "zigzag-genome") else genome.arch


def _needs_extra(name):
    """The zigzag backends need the optional accel extra (ZigZag, Python >= 3.11; CI installs it)."""
    if name.startswith("zigzag"):
        pytest.importorskip("zigzag", reason="backend zigzag needs ZigZag: pip install nacos[accel]")


def test_an_unknown_backend_names_the_choices():
    with pytest.raises(ConfigError) as err:
        get_backend("tvm-fast", config_from_dict({}))
    assert str(err.value) == f"unknown backend: tvm-fast; choose one of {', '.join(sorted(BACKENDS))}"


def test_an_instance_passes_through_and_a_non_backend_is_refused():
    from nacos.backends.onnxruntime import OnnxRuntimeLatency

    backend = OnnxRuntimeLatency(1, 2, 1)
    assert get_backend(backend) is backend
    with pytest.raises(ConfigError, match="neither a backend name nor a backend"):
        get_backend(object())


@pytest.mark.parametrize("name", backend_names())
def test_each_registered_name_is_its_class_name(name):
    cls = backend_class(name)
    assert issubclass(cls, Backend) and cls.name == name


def test_rpc_urls_are_parsed_in_schedules_and_refused_with_the_key_named():
    from nacos.backends.tvm import make_target
    from schedules.errors import ScheduleError
    from schedules.targets import parse_rpc_url

    assert parse_rpc_url("rpc://127.0.0.1:9190/pi4") == ("127.0.0.1", 9190, "pi4")
    for spec in ("rpc://host/pi4", "rpc://:9190/pi4", "rpc://host:90", "host:9190/pi4"):
        with pytest.raises(ScheduleError, match="is not rpc://HOST:PORT/KEY"):
            parse_rpc_url(spec)
    with pytest.raises(ConfigError, match=r"^target: 'rpc://host:x/k' is not rpc://HOST:PORT/KEY$"):
        make_target("rpc://host:x/k")
    assert make_target("rpc://127.0.0.1:9190/pi4")[1].url == "rpc://127.0.0.1:9190/pi4"


@pytest.mark.parametrize("name", backend_names())
def test_build_then_measure_is_what_latency_gives(name, tiny):
    _needs_extra(name)
    cfg, space, genome, onnx_path, _ = tiny
    backend = get_backend(name, cfg, space)
    g = _genome_for(name, genome)
    built = backend.build(g, genome.arch, onnx_path)
    assert isinstance(built, Built) and built.ok, built.reason
    assert built.artifact is not None and built.seconds >= 0
    measured = backend.measure(built)
    direct = backend.latency(g, genome.arch, onnx_path)
    assert measured.ok and direct.ok, (measured.reason, direct.reason)
    assert measured.ms > 0 and direct.ms > 0
    assert set(measured.details) == set(direct.details)
    for key in ("unscheduled_layers", "measured_by", "runs"):
        assert measured.details.get(key) == direct.details.get(key)


@pytest.mark.parametrize("name", backend_names())
def test_a_model_that_does_not_build_is_a_failure_as_data(name, tiny):
    _needs_extra(name)
    cfg, space, genome, _, bad = tiny
    backend = get_backend(name, cfg, space)
    built = backend.build(_genome_for(name, genome), genome.arch, bad)
    result = backend.measure(built)
    assert not result.ok and math.isnan(result.ms) and result.reason
    if name != "onnxruntime":  # onnxruntime builds its session where it times: its failure comes from measure
        assert not built.ok and built.artifact is None and built.reason
        assert result.reason == built.reason
        # latency() lets the exception through, for the evaluator to record with its traceback (as before)
        with pytest.raises(Exception):
            backend.latency(_genome_for(name, genome), genome.arch, bad)


def test_the_macs_proxy_counts_what_the_layer_statistics_count(tiny):
    """`baseline_latency: macs` reports millions of MACs of the exported model, the count of
    `archspace.stats`, and times nothing; a budget in milliseconds is refused for it."""
    from archspace.stats import onnx_layer_stats

    cfg, space, genome, onnx_path, _ = tiny
    result = get_backend("macs", cfg, space).latency(genome, genome.arch, onnx_path)
    macs = sum(s.macs for s in onnx_layer_stats(str(onnx_path)))
    assert result.ok and macs > 0 and result.ms == macs / 1e6
    assert result.details["unit"] == "MMAC" and result.details["macs"] == macs and result.details["runs"] == 0
    assert config_from_dict({"mode": "baseline", "baseline_latency": "macs"}).baseline_latency == "macs"
    for budgets in ({"latency_ms": 1.0}, {"latency_budgets_ms": [1.0]}):
        with pytest.raises(ConfigError, match="^budgets.latency_ms: baseline_latency macs"):
            config_from_dict({"mode": "baseline", "baseline_latency": "macs", "budgets": budgets})
