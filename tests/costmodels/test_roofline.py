import json

import pytest

from costmodels import CostModelError, Roofline, conv2d_workload, dense_workload
from costmodels.roofline import cache_dir, load_or_calibrate
from nacos.cli import main as nacos_main


def test_bounds_and_summary_by_hand():
    roof = Roofline(peak_gflops=100.0, bandwidth_gbs=10.0)
    assert roof.ridge_intensity == 10.0
    fc = dense_workload("fc", 1, 1000, 1000)        # intensity ~0.5 FLOP/B: memory bound
    conv = conv2d_workload("c", (1, 64, 56, 56), 64, 3, 1, 1)  # ~57 FLOP/B: compute bound
    assert roof.bound(fc) == "memory" and roof.bound(conv) == "compute"
    assert roof.min_time_ms(fc) == pytest.approx(1e3 * fc.bytes / 10e9)
    assert roof.min_time_ms(conv) == pytest.approx(1e3 * 2 * conv.macs / 100e9)
    s = roof.summarize([fc, conv], [1.0, 4.0])
    row = s["layers"][1]
    assert row["achieved_gflops"] == pytest.approx(2 * conv.macs / 4e-3 / 1e9)
    assert row["compute_utilisation"] == pytest.approx(row["achieved_gflops"] / 100.0)
    assert s["layers"][0]["bandwidth_utilisation"] == pytest.approx(fc.bytes / 1e-3 / 1e9 / 10.0)
    assert s["total"]["latency_ms"] == 5.0
    with pytest.raises(CostModelError):
        roof.summarize([fc], [1.0, 2.0])
    with pytest.raises(CostModelError):
        roof.summarize([fc], [float("nan")])


def test_frequency_scaling_multiplier():
    roof = Roofline(100.0, 10.0)
    slow = roof.scaled(0.5)
    assert slow.peak_gflops == 50.0 and slow.bandwidth_gbs == 10.0
    conv = conv2d_workload("c", (1, 64, 56, 56), 64, 3, 1, 1)
    fc = dense_workload("fc", 1, 1000, 1000)
    assert roof.latency_multiplier([conv], slow) == pytest.approx(2.0)   # compute bound: follows the clock
    assert roof.latency_multiplier([fc], slow) == pytest.approx(1.0)     # memory bound: does not
    mixed = roof.latency_multiplier([conv, fc], slow)
    assert 1.0 < mixed < 2.0
    with pytest.raises(CostModelError):
        roof.scaled(0.0)
    with pytest.raises(CostModelError):
        Roofline(0.0, 1.0)


def test_calibration_is_measured_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("NACOS_CACHE_DIR", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    roof, rec, cached = load_or_calibrate(matmul_n=128, copy_mib=8)
    assert not cached and roof.peak_gflops > 0 and roof.bandwidth_gbs > 0
    path = tmp_path / "env" / f"calibration-{rec['host_key']}.json"
    assert json.loads(path.read_text())["peak_gflops"] == rec["peak_gflops"]
    roof2, _, cached2 = load_or_calibrate(matmul_n=128, copy_mib=8)
    assert cached2 and roof2.peak_gflops == roof.peak_gflops
    path.write_text("{ torn")  # a corrupt cache is measured again, not trusted
    _, _, cached3 = load_or_calibrate(matmul_n=128, copy_mib=8)
    assert not cached3 and json.loads(path.read_text())["calibration_version"] == 1


def test_nacos_calibrate_cli(tmp_path, capsys):
    args = ["calibrate", "--cache-dir", str(tmp_path), "--matmul-n", "128", "--copy-mib", "8", "--json"]
    assert nacos_main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["from_cache"] is False and first["peak_gflops"] > 0
    assert nacos_main(args + ["--freq-ratio", "0.5"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["from_cache"] is True and second["peak_gflops"] == first["peak_gflops"]
    assert second["scaled"]["peak_gflops"] == pytest.approx(first["peak_gflops"] * 0.5)
    assert nacos_main(["calibrate", "--cache-dir", str(tmp_path)]) == 0
    assert "GFLOP/s" in capsys.readouterr().out
    # misuse is exit code 2 with a message, not a traceback
    assert nacos_main(["calibrate", "--cache-dir", str(tmp_path / "x"), "--matmul-n", "8"]) == 2


def test_peak_and_bandwidth_measurements_are_the_calibrations_own():
    """`measure_peak_gflops` / `measure_bandwidth_gbs` are what `calibrate` and benchmarks/inner_loop.py
    measure with; a thread cap applies while measuring and is lifted after."""
    import numpy  # noqa: F401 - BLAS loaded, so threadpoolctl sees its thread count
    from threadpoolctl import threadpool_info

    from costmodels.roofline import bandwidth_method, calibrate, measure_bandwidth_gbs, measure_peak_gflops

    before = [(p["internal_api"], p["num_threads"]) for p in threadpool_info()]
    assert before, "numpy's BLAS is not visible to threadpoolctl"
    peak = measure_peak_gflops((64, 128), 2, threads=1)
    assert 0 < peak < 1e5
    assert [(p["internal_api"], p["num_threads"]) for p in threadpool_info()] == before
    assert 0 < measure_bandwidth_gbs(8, 1) < 1e4
    rec = calibrate(matmul_n=64, matmul_repeats=1, copy_mib=8, copy_repeats=2)
    method = "numpy copy of 8 MiB float32 (read + write), best of 2"
    assert rec["method"]["bandwidth"] == bandwidth_method(8, 2) == method
    for bad in (dict(sizes=(32,)), dict(sizes=()), dict(repeats=0)):
        with pytest.raises(CostModelError):
            measure_peak_gflops(**bad)
    with pytest.raises(CostModelError):
        measure_bandwidth_gbs(4)
