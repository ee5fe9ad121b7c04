import onnx
import pytest

from schedules.errors import ScheduleError
from schedules.frontend import extract_workloads, import_onnx


def _by_kind(workloads):
    out = {}
    for w in workloads:
        out.setdefault(w.op_kind, []).append(w)
    return out


def test_workloads_of_a_small_cnn(models, target):
    ws = extract_workloads(import_onnx(models["a"]), target)
    kinds = _by_kind(ws)
    assert set(kinds) == {"conv2d", "depthwise_conv2d", "pointwise_conv2d", "dense", "elementwise"}
    conv, = kinds["conv2d"]
    # BatchNorm decomposed and fused into the conv's epilogue: one task for conv + bn + relu.
    assert conv.input_shapes[0] == (1, 3, 16, 16) and conv.output_shape == (1, 8, 16, 16)
    assert conv.macs == 8 * 16 * 16 * 3 * 3 * 3 and conv.kernel == (3, 3) and conv.groups == 1
    dw, = kinds["depthwise_conv2d"]
    assert dw.macs == 8 * 16 * 16 * 9 and dw.groups == 8
    pw, = kinds["pointwise_conv2d"]
    assert pw.macs == 16 * 16 * 16 * 8 and pw.kernel == (1, 1)
    dense, = kinds["dense"]
    assert dense.macs == 16 * 10 and dense.output_shape == (1, 10)
    # bytes: every argument of the fused function once (input, weight, bias, output), fp32
    assert conv.bytes == 4 * (3 * 16 * 16 + 8 * 3 * 9 + 8 + 8 * 16 * 16)
    assert len({w.structural_hash for w in ws}) == len(ws) and all(w.count == 1 for w in ws)


def test_repeated_layer_is_counted_and_batch_is_another_workload(models, target):
    twice = extract_workloads(import_onnx(models["twice"]), target)
    conv = [w for w in twice if w.op_kind == "conv2d"]
    assert len(conv) == 1 and conv[0].count == 2
    one = {w.op_kind: w for w in extract_workloads(import_onnx(models["a"]), target)}
    four = {w.op_kind: w for w in extract_workloads(import_onnx(models["a"], {"input": (4, 3, 16, 16)}), target)}
    assert four["conv2d"].batch == 4 and four["conv2d"].macs == 4 * one["conv2d"].macs
    assert four["conv2d"].structural_hash != one["conv2d"].structural_hash
    # same shapes in another network (other weights) -> same workload key
    b = {w.op_kind: w for w in extract_workloads(import_onnx(models["b"]), target) if w.op_kind == "conv2d"
         and w.input_shapes[0][1] == 3}
    assert b["conv2d"].structural_hash == one["conv2d"].structural_hash


def test_bad_models_are_refused(models, tmp_path):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(models["a"].read_bytes()[:200])
    with pytest.raises(ScheduleError, match="not a valid ONNX model"):
        import_onnx(cut)
    with pytest.raises(ScheduleError, match="no such ONNX file"):
        import_onnx(tmp_path / "missing.onnx")
    with pytest.raises(ScheduleError, match="unknown input"):
        import_onnx(models["a"], {"image": (1, 3, 16, 16)})
    m = onnx.load(str(models["a"]))
    m.graph.node[0].input[0] = "dangling"
    bad = tmp_path / "dangling.onnx"
    onnx.save(m, str(bad))
    with pytest.raises(ScheduleError, match="not a valid ONNX model"):
        import_onnx(bad)


def _task_keys(mod, target):
    return sorted((w.structural_hash, w.count, w.op_kind, w.input_shapes, w.output_shape)
                  for w in extract_workloads(mod, target))


def test_numpy_constant_folding_keeps_every_task(models, target, tmp_path):
    """The numpy pre-folding (`schedules.constant_folding`) must leave the tuning database's keys alone:
    the same tasks, with the same counts, as TVM's FoldConstant alone, on a small CNN and on a sampled
    architecture of the default space (biases, Clip bounds, a Gemm weight)."""
    import random

    from archspace.export import export_onnx
    from archspace.space import ArchSpace

    sampled = tmp_path / "sampled.onnx"
    export_onnx(ArchSpace().sample(random.Random(5)), sampled)
    for path in (models["a"], sampled):
        folded, plain = import_onnx(path), import_onnx(path, numpy_folding=False)
        assert _task_keys(folded, target) == _task_keys(plain, target)


def test_numpy_constant_folding_leaves_nothing_for_fold_constant(tmp_path):
    """After `fold_constants`, no reshape / isnan / where / permute_dims of the sampled architecture still
    works on constants only (each would cost FoldConstant an LLVM build)."""
    import random

    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    from archspace.export import export_onnx
    from archspace.space import ArchSpace
    from schedules.constant_folding import FOLDERS, fold_constants

    path = tmp_path / "sampled.onnx"
    export_onnx(ArchSpace().sample(random.Random(6)), path)
    mod = relax.transform.DecomposeOpsForInference()(from_onnx(onnx.load(str(path)), keep_params_in_input=False))

    def constant_calls(m):
        bound = {}
        n = 0
        for block in m["main"].body.blocks:
            for binding in block.bindings:
                value = binding.value
                if isinstance(value, tvm.ir.Constant):
                    bound[binding.var] = value
                elif isinstance(value, relax.Call) and getattr(value.op, "name", None) in FOLDERS:
                    k = FOLDERS[value.op.name][0]
                    if all(isinstance(bound.get(a, a), tvm.ir.Constant) for a in value.args[:k]):
                        n += 1
        return n

    assert constant_calls(mod) > 20       # the frontend's biases and Clip bounds
    assert constant_calls(fold_constants(mod)) == 0
