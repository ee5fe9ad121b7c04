"""ONNX export of an architecture, checked before anyone else reads it.

The legacy TorchScript exporter at opset 17 is used on purpose: it is about 30 times faster than the
dynamo exporter on these networks and folds BatchNorm into the convolutions in eval mode (see
TVM-NOTES.md). The file is written to a temporary name and renamed only after `onnx.checker`
passed and onnxruntime's output matched PyTorch's, so a crash never leaves half a model behind.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np

from archspace.architecture import Architecture
from archspace.errors import ArchSpaceError
from archspace.space import ArchSpace

__all__ = ["export_onnx", "export_module", "read_architecture", "ARCH_METADATA_KEY", "INPUT_NAME", "OUTPUT_NAME"]

ARCH_METADATA_KEY = "nacos.architecture"
SPACE_METADATA_KEY = "nacos.space"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
TOLERANCE = 1e-4


def export_module(module, example, path: Path | str, metadata: dict[str, str] | None = None,
                  opset: int = 17, check: bool = True, seed: int = 0) -> Path:
    """Export an eval-mode `torch.nn.Module` for a fixed input shape; check and compare; rename.

    Raises `ArchSpaceError` when the checker fails or onnxruntime differs from PyTorch on a random
    input by more than 1e-4 times the output scale (max(1, max |output|))."""
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is chosen on purpose
        torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], do_constant_folding=True)
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "nacos"
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        onnx.save(model, str(tmp))
        if check:
            onnx.checker.check_model(str(tmp), full_check=True)
            _compare_with_onnxruntime(module, tmp, tuple(example.shape), seed)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _compare_with_onnxruntime(module, path: Path, shape: tuple[int, ...], seed: int) -> float:
    import onnxruntime as ort
    import torch

    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    # An input the output does not depend on (a cell of only "none" edges) is pruned by the exporter.
    feeds = {i.name: x for i in session.get_inputs()}
    got = session.run(None, feeds)[0]
    diff = float(np.max(np.abs(got - expected)))
    tolerance = TOLERANCE * max(1.0, float(np.max(np.abs(expected))))  # relative to the output scale
    if not diff <= tolerance:
        raise ArchSpaceError(f"{path.name}: onnxruntime differs from PyTorch by {diff:.3g} (> {tolerance:.3g})")
    return diff


def export_onnx(arch: Architecture, path: Path | str, batch: int = 1, supernet=None,
                space: ArchSpace | None = None, in_channels: int = 1, num_classes: int = 10,
                check: bool = True, seed: int = 0) -> Path:
    """Export `arch` as ONNX (input ``input`` of shape (batch, C, R, R), output ``logits``).

    With a `supernet`, the weights are the inherited ones (and its space, channels and classes are
    used); without, the network is freshly initialised with `seed` (latency needs no trained weights).
    The architecture's JSON is stored in the model's metadata under ``nacos.architecture``."""
    import torch

    from archspace.supernet import build_network

    if batch < 1:
        raise ArchSpaceError(f"batch: must be >= 1, got {batch}")
    if supernet is not None:
        space, in_channels = supernet.space, supernet.in_channels
        net = supernet.subnet(arch)
    else:
        space = space or ArchSpace()
        torch.manual_seed(seed)
        net = build_network(arch, space, in_channels, num_classes)
    example = torch.randn(batch, in_channels, arch.resolution, arch.resolution)
    metadata = {ARCH_METADATA_KEY: arch.to_json(), SPACE_METADATA_KEY: space.config.to_json()}
    return export_module(net, example, path, metadata, check=check, seed=seed)


def read_architecture(path: Path | str) -> Architecture | None:
    """The architecture stored in an exported model's metadata, or None for a foreign model."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for entry in model.metadata_props:
        if entry.key == ARCH_METADATA_KEY:
            return Architecture.from_json(entry.value)
    return None
