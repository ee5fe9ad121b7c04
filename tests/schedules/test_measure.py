"""compile / measure / references, the correctness gate and fault recording (real TVM builds)."""

import json
import socket

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from schedules.database import TuningDatabase
from schedules.frontend import import_onnx
from schedules.measure import (
    Protocol,
    check_against_onnxruntime,
    compile,
    measure,
    measure_onnx,
    reference_onnxruntime,
    reference_torch,
)
from schedules.targets import (
    RpcTarget,
    cuda_available,
    cuda_target,
    host_target,
    host_threads,
)
from schedules.tuner import tune

P = Protocol(warmup=1, repeats=3)


def test_untuned_measurement_and_references_share_protocol_and_threads(models, torch_models, target):
    m = measure(compile(models["a"], None, target), P)
    assert m.ok and m.runs == 3 and m.warmup == 1 and m.backend == "tvm" and m.batch == 1
    ort = reference_onnxruntime(models["a"], P, threads=host_threads())
    tm = reference_torch(torch_models["a"](), (1, 3, 16, 16), P, threads=host_threads())
    assert ort.ok and tm.ok and ort.threads == tm.threads == m.threads == host_threads()
    assert ort.backend == "onnxruntime" and tm.backend == "torch"
    for x in (m, ort, tm):
        assert 0 < x.min_ms <= x.median_ms <= x.p95_ms


def test_another_batch_is_compiled_checked_and_measured(models, target):
    m = measure_onnx(models["a"], None, target, P, input_shapes={"input": (4, 3, 16, 16)})
    assert m.ok, m.error
    assert m.batch == 4


def test_wrong_result_is_recorded_and_never_used(models, target):
    # A module compiled from other weights stands in for a schedule that computes something else.
    wrong = compile(models["a_other_weights"], None, target)
    wrong.onnx_path = models["a"]
    m = measure(wrong, P)
    assert not m.ok and m.error.startswith("wrong result: output 0 max abs diff")
    assert np.isnan(m.median_ms)
    ok, reason = check_against_onnxruntime(compile(models["a"], None, target))
    assert ok and reason == ""


def test_build_runtime_and_timeout_faults_are_recorded(models, target, tmp_path):
    # build error: an op TVM's frontend does not import (ConvInteger; see TVM-NOTES.md)
    x = helper.make_tensor_value_info("input", TensorProto.UINT8, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1, 2, 2])
    w = helper.make_tensor("w", TensorProto.UINT8, [1, 1, 3, 3], [1] * 9)
    graph = helper.make_graph([helper.make_node("ConvInteger", ["input", "w"], ["y"])], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    bad = tmp_path / "convinteger.onnx"
    onnx.save(model, str(bad))
    m = measure_onnx(bad, None, target, P)
    assert not m.ok and m.error.startswith("build error:")
    # runtime error: the module is called with an input of another shape than it was built for
    compiled = compile(models["a"], None, target)
    compiled.input_shapes = {"input": (1, 3, 8, 8)}
    m = measure(compiled, P, check=False)
    assert not m.ok and m.error.startswith("runtime error:")
    # timeout: a limit no run can meet
    m = measure(compile(models["a"], None, target), Protocol(warmup=1, repeats=3, timeout_s=1e-9))
    assert not m.ok and m.error.startswith("timeout:")


def test_metaschedule_build_faults_are_recorded_and_tuning_goes_on(models, target, tmp_path):
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder

    from schedules.tuner import make_builder

    real = make_builder("inprocess", target)

    @derived_object
    class FlakyBuilder(PyBuilder):
        def build(self, build_inputs):
            out = []
            for i, inp in enumerate(build_inputs):
                out.append(BuilderResult(None, "injected build failure") if i % 2 else real.build([inp])[0])
            return out

    db = TuningDatabase(tmp_path / "db")
    mod = import_onnx(models["small"])
    report = tune(mod, db, target, trials_per_task=16, builder=FlakyBuilder(), kinds=("conv2d",))
    assert [w.op_kind for w in report.tuned] == ["conv2d"]
    assert report.faults and all(f.stage == "build" and "injected" in f.reason for f in report.faults)
    logged = [json.loads(line) for line in (db.path / "faults.jsonl").read_text().splitlines()]
    assert len(logged) == len(report.faults) and logged[0]["workload"] == report.tuned[0].name
    rec = db.lookup(report.tuned[0])
    assert rec is not None and rec.records >= 1       # the candidates that built were measured
    assert measure(compile(models["small"], db, target), P).ok


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rpc_tracker_on_loopback(models, target):
    from tvm.rpc.server import Server
    from tvm.rpc.tracker import Tracker

    port = _free_port()
    tracker = Tracker(host="127.0.0.1", port=port, port_end=port + 50, silent=True)
    server = None
    procs = [tracker.proc]
    try:
        sport = _free_port()
        server = Server(host="127.0.0.1", port=sport, port_end=sport + 50, key="nacos-test",
                        tracker_addr=("127.0.0.1", tracker.port), silent=True)
        procs.append(server.proc)
        remote = RpcTarget("127.0.0.1", tracker.port, "nacos-test")
        m = measure(compile(models["a"], None, target), P, rpc=remote)
        assert m.ok, m.error
        assert m.backend == "tvm-rpc" and m.runs == 3
    finally:
        if server is not None:
            server.terminate()
        tracker.terminate()
    assert not any(p.is_alive() for p in procs)   # both stopped, nothing left behind


@pytest.mark.skipif(not cuda_available(), reason="no CUDA device here")
def test_cuda_target_compiles_and_measures(models):  # pragma: no cover - GPU machines only
    target = cuda_target()
    assert target.kind.name == "cuda"


def test_cuda_absent_is_a_clear_error():
    if cuda_available():
        pytest.skip("a CUDA device is present")
    from schedules.errors import ScheduleError

    with pytest.raises(ScheduleError, match="no CUDA device"):
        cuda_target()


def test_host_target_detects_cpu_and_cores():
    import tvm

    t = host_target()
    assert t.kind.name == "llvm" and str(t.attrs["mcpu"]) == tvm.target.codegen.llvm_get_system_cpu()
    assert int(t.attrs["num-cores"]) == host_threads() >= 1
