"""int8 candidates: onnxruntime static quantization of the inherited-weight subnet, its own accuracy
and latency, and the report's per-precision table; int8 with a TVM mode is refused with the reason."""

import json

import onnx
import pytest

from nacos.config import config_from_dict
from nacos.errors import ConfigError
from nacos.search.run import run_search

CFG = {"mode": "baseline", "baseline_latency": "onnxruntime", "precision": "int8", "trials": 2, "seed": 1,
       "strategy": {"population": 2, "sample_size": 2}, "tuning": {"repeats": 5, "warmup": 1, "threads": 1}}


def test_int8_search_measures_the_quantized_model(tmp_path):
    run_dir = tmp_path / "run"
    summary = run_search(config_from_dict(CFG), run_dir, progress=False)
    assert summary["ok"] == 2, summary
    rows = json.loads((run_dir / "report" / "candidates.json").read_text())
    for row in rows:
        assert row["precision"] == "int8" and row["latency_ms"] > 0
        # quantization costs little accuracy on these small nets: a broken quantizer would cost ~0.8
        assert 0.5 < row["accuracy"] <= 1 and abs(row["accuracy"] - row["accuracy_fp32"]) < 0.1, row
        assert row["param_mb_int8"] == pytest.approx(row["param_mb_fp32"] / 4)
        assert row["peak_memory_mb"] == pytest.approx(row["peak_memory_mb_int8"])
        model = onnx.load(str(run_dir / "artifacts" / row["arch_id"] / "model.int8.onnx"))
        onnx.checker.check_model(model)
        ops = {n.op_type for n in model.graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    table = json.loads((run_dir / "report" / "precision.json").read_text())
    assert {r["precision"] for r in table} == {"fp32", "fp16", "int8"}


@pytest.mark.parametrize("mode", ["two-stage", "one-stage", "baseline"])
def test_int8_with_a_tvm_backend_is_refused(mode):
    with pytest.raises(ConfigError, match="int8 runs only with mode baseline and baseline_latency onnxruntime"):
        config_from_dict({**CFG, "mode": mode, "baseline_latency": "default-schedule"})
