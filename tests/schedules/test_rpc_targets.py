"""Targets: the host CPU, CUDA (skipped cleanly without a GPU) and measurement through TVM's RPC
tracker on loopback (the test starts its own tracker and server on 127.0.0.1 and stops them)."""

from __future__ import annotations

import socket

import pytest

from schedules import ScheduleError, compile, has_cuda, make_target, measure
from tests.schedules.inner_nets import NetA, export


def test_host_target_detects_cpu_and_cores():
    spec = make_target("llvm", threads=2)
    assert spec.kind == "llvm" and spec.rpc is None and spec.threads == 2
    assert int(spec.target.attrs["num-cores"]) == 2 and str(spec.target.attrs["mcpu"])
    with pytest.raises(ScheduleError, match="Unknown target"):
        make_target("llvm -mcpu=native")
    with pytest.raises(ScheduleError, match="rpc://HOST:PORT/KEY"):
        make_target("rpc://localhost/key")


def test_cuda_without_a_gpu_is_a_clear_error():
    if has_cuda():
        pytest.skip("a GPU is present: covered by test_cuda_target")
    with pytest.raises(ScheduleError, match="no CUDA device"):
        make_target("cuda")


@pytest.mark.skipif(not has_cuda(), reason="no CUDA device here")
def test_cuda_target():
    spec = make_target("cuda")
    assert spec.is_gpu and str(spec.target.attrs["arch"]).startswith("sm_")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_measurement_through_a_loopback_rpc_tracker(tmp_path):
    from tvm import rpc
    from tvm.rpc.tracker import Tracker

    onnx_path = export(NetA(), tmp_path / "a.onnx", (1, 3, 16, 16))
    port = _free_port()
    tracker = Tracker(host="127.0.0.1", port=port, port_end=port + 50, silent=True)
    server = None
    try:
        server = rpc.Server(host="127.0.0.1", port=tracker.port + 60, port_end=tracker.port + 120,
                            tracker_addr=("127.0.0.1", tracker.port), key="loopback", silent=True)
        spec = make_target(f"rpc://127.0.0.1:{tracker.port}/loopback", threads=1)
        assert spec.rpc.key == "loopback"
        m = measure(compile(onnx_path, None, spec), warmup=1, repeats=3, number=2)
        assert m.ok, m.error
        assert m.backend == "tvm-rpc" and m.runs == 6 and m.median_ms > 0
        assert "rpc://127.0.0.1" in m.target
    finally:
        if server is not None:
            server.terminate()
        tracker.terminate()
