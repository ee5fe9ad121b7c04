import pytest

from costmodels import (
    CostModelError,
    EnergyConstants,
    conv2d_workload,
    dense_workload,
    energy_report,
    op_energy,
    proxy_energy_j,
)


def test_op_energy_by_hand():
    fc = dense_workload("fc", 1, 100, 10)  # 1,000 MACs; bytes = 4 * (100 + 1000 + 10 + 10) = 4,480: fits in SRAM
    (e,) = op_energy([fc], "fp32")
    assert e.memory_level == "sram"
    assert e.compute_j == pytest.approx(1000 * 4.6e-12)
    assert e.register_j == pytest.approx(1000 * 2 * 4 * 0.25e-12)
    assert e.memory_j == pytest.approx(4480 * 1.25e-12)
    (e8,) = op_energy([fc], "int8")
    assert e8.compute_j == pytest.approx(1000 * 0.3e-12)
    assert e8.memory_j == pytest.approx(1120 * 1.25e-12)


def test_large_layer_pays_dram_and_precision_orders_energy():
    conv = conv2d_workload("c", (1, 64, 56, 56), 64, 3, 1, 1)
    assert conv.bytes > (1 << 20)
    (e,) = op_energy([conv], "fp32")
    assert e.memory_level == "dram"
    assert e.memory_j == pytest.approx(conv.bytes * 160e-12)
    totals = [sum(x.total_j for x in op_energy([conv], p)) for p in ("fp32", "fp16", "int8")]
    assert totals[0] > totals[1] > totals[2]
    # count multiplies
    twice = conv2d_workload("c", (1, 64, 56, 56), 64, 3, 1, 1, count=2)
    assert op_energy([twice])[0].total_j == pytest.approx(2 * e.total_j)


def test_report_has_both_estimates_and_sources():
    layers = [dense_workload("fc", 1, 100, 10)]
    rep = energy_report(layers, latency_ms=2.0, power_w=5.0, power_source="test figure")
    assert rep.proxy_j == pytest.approx(0.01)
    assert rep.op_model_j == pytest.approx(rep.compute_j + rep.register_j + rep.memory_j)
    assert "Horowitz" in rep.constants_source and rep.power_source == "test figure"
    assert energy_report(layers).proxy_j is None


def test_bad_energy_input():
    with pytest.raises(CostModelError):
        proxy_energy_j(float("nan"), 5.0)
    with pytest.raises(CostModelError):
        proxy_energy_j(1.0, 0.0)
    with pytest.raises(CostModelError, match="precision"):
        op_energy([dense_workload("fc", 1, 2, 2)], "fp64")
    with pytest.raises(CostModelError, match="lacks"):
        EnergyConstants(mac_pj={"fp32": 1.0})
