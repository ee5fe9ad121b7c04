"""Devices of another instruction set: ``rpc://HOST:PORT/KEY?mtriple=...`` names the TVM target beside the
RPC address, code is built here for it (build only: this CPU cannot run it) and travels as object files
that the device links. The `.tar` route measured on a loopback server of this CPU is in
test_rpc_loopback.py."""

from __future__ import annotations

import tarfile

import pytest

from schedules.errors import ScheduleError
from schedules.measure import compile, export_for_device, measure
from schedules.targets import (
    RpcTarget,
    foreign_isa,
    host_target,
    machine_key,
    parse_rpc_spec,
    rpc_device_target,
)

A64 = "rpc://127.0.0.1:9190/rasp4?mtriple=aarch64-linux-gnu&mcpu=cortex-a72&num-cores=4"
EM_AARCH64 = 183  # ELF e_machine


def test_the_url_names_the_device_target_beside_the_address():
    s = parse_rpc_spec(A64)
    assert (s.host, s.port, s.key) == ("127.0.0.1", 9190, "rasp4")
    assert dict(s.device) == {"mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a72", "num-cores": "4"}
    assert (s.link, s.cc) == ("device", "")   # no cross compiler: the device links
    s = parse_rpc_spec("rpc://h:1/k?mtriple=aarch64-linux-gnu&cc=aarch64-linux-gnu-g%2B%2B")
    assert (s.link, s.cc) == ("host", "aarch64-linux-gnu-g++")
    plain = parse_rpc_spec("rpc://h:1/k")
    assert plain.device == () and plain.link == "host"
    assert RpcTarget.from_url(A64).link == "device" and RpcTarget.from_url(A64).url == "rpc://127.0.0.1:9190/rasp4"


@pytest.mark.parametrize("spec, says", [
    ("rpc://h:1/k?mtripel=aarch64-linux-gnu", "unknown option(s) ['mtripel']; choose from mtriple"),
    ("rpc://h:1/k?mcpu=cortex-a72", "give its mtriple too"),
    ("rpc://h:1/k?mtriple=aarch64-linux-gnu&link=host", "cannot be linked by this machine's compiler"),
    ("rpc://h:1/k?mtriple=aarch64-linux-gnu&link=board", "link must be host or device"),
    ("rpc://h:1/k?num-cores=0", "num-cores must be a whole number >= 1"),
    ("rpc://h:1/k?mtriple=", "has no value"),
    ("rpc://h:1/k?mtriple=a&mtriple=b", "given twice"),
    ("rpc://h:1/k?garbage", "is not KEY=VALUE"),
    ("rpc://h:1/?mtriple=aarch64-linux-gnu", "is not rpc://HOST:PORT/KEY"),
])
def test_a_malformed_device_query_is_refused_with_what_is_accepted(spec, says):
    with pytest.raises(ScheduleError, match=None) as err:
        parse_rpc_spec(spec)
    assert says in str(err.value)


def test_the_device_target_is_checked_by_llvm_before_any_build():
    t = rpc_device_target(A64)
    assert foreign_isa(t) and t.attrs["mtriple"] == "aarch64-linux-gnu" and int(t.attrs["num-cores"]) == 4
    assert "arm_cpu" in [str(k) for k in t.keys]      # TVM's ARM strategies apply
    assert machine_key(t) == "llvm/cortex-a72"        # its records are that CPU's, never this one's
    triple_only = rpc_device_target("rpc://h:1/k?mtriple=aarch64-linux-gnu", threads=2)
    assert machine_key(triple_only) == "llvm/aarch64-linux-gnu" and int(triple_only.attrs["num-cores"]) == 2
    assert machine_key(rpc_device_target("rpc://h:1/k", 2)) == machine_key(host_target(2))   # this CPU's code
    assert not foreign_isa(host_target(1))
    with pytest.raises(ScheduleError, match="LLVM knows no CPU 'cortex-zz'"):
        rpc_device_target("rpc://h:1/k?mtriple=aarch64-linux-gnu&mcpu=cortex-zz")
    with pytest.raises(ScheduleError, match="has no frobnicator backend"):
        rpc_device_target("rpc://h:1/k?mtriple=frobnicator-linux-gnu")


@pytest.fixture(scope="module")
def a64_build(models):
    return compile(models["small"], None, rpc_device_target(A64))


def test_a_model_builds_for_aarch64_and_travels_as_aarch64_objects(a64_build, tmp_path):
    path = export_for_device(a64_build, tmp_path, RpcTarget.from_url(A64))
    assert path.name == "model.tar"
    with tarfile.open(path) as tar:
        objects = [m for m in tar.getmembers() if m.name.endswith(".o")]
        assert objects
        for m in objects:
            head = tar.extractfile(m).read(20)
            assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == EM_AARCH64, m.name
    # linking here with this machine's compiler is refused before it is tried, with what to do instead
    with pytest.raises(ScheduleError, match="name a cross compiler"):
        export_for_device(a64_build, tmp_path, RpcTarget("127.0.0.1", 9190, "rasp4"))


def test_foreign_code_is_not_run_here(a64_build):
    m = measure(a64_build)
    assert not m.ok and "cannot run on this CPU" in m.error


def test_tuning_for_a_foreign_device_needs_its_runner(models, tmp_path):
    from schedules.database import TuningDatabase
    from schedules.frontend import import_onnx, onnx_input_shapes
    from schedules.tuner import explicit_tune, tune

    target = rpc_device_target(A64)
    mod = import_onnx(models["small"], onnx_input_shapes(models["small"]))
    db = TuningDatabase(tmp_path / "db", target=target)
    with pytest.raises(ScheduleError, match="explicit searcher times its configs on this CPU"):
        explicit_tune(mod, db, target, configs_per_task=1)
    with pytest.raises(ScheduleError, match="tune it with the device's runner"):
        tune(mod, db, target, trials_per_task=1)


def test_metaschedule_builds_its_candidates_for_the_device(models):
    """What an `RPCRunner` uploads during tuning: the builder's artifact, AArch64 objects in a .tar."""
    from tvm.s_tir.meta_schedule.builder import BuilderInput

    from schedules.frontend import extract_tasks, import_onnx, onnx_input_shapes
    from schedules.tuner import make_builder

    target = rpc_device_target(A64)
    task = extract_tasks(import_onnx(models["small"], onnx_input_shapes(models["small"])), target)[0]
    (result,) = make_builder("inprocess", target).build([BuilderInput(task.dispatched[0], target)])
    assert result.error_msg is None, result.error_msg
    assert result.artifact_path.endswith(".tar")
    with tarfile.open(result.artifact_path) as tar:
        heads = [tar.extractfile(m).read(20) for m in tar.getmembers() if m.name.endswith(".o")]
    assert heads and all(int.from_bytes(h[18:20], "little") == EM_AARCH64 for h in heads)

