"""int8 candidates through onnxruntime's static quantization.

Where int8 runs: onnxruntime (QDQ format, per-channel int8 weights, uint8 activations calibrated on
training images). TVM 0.27's Relax ONNX frontend has no ``DequantizeLinear`` or ``QLinearConv``
converter, so a quantized model cannot be compiled by the TVM backends; an int8 search therefore runs
in baseline mode with onnxruntime latency (`nacos.config` enforces it with that reason).

The candidate's accuracy at int8 is measured on the quantized model itself (onnxruntime on the
validation split), next to its fp32 accuracy with inherited weights, so the report shows what
quantization costs each architecture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from archspace.architecture import Architecture

__all__ = ["quantize_candidate", "onnx_accuracy"]


def _images(x: np.ndarray, resolution: int) -> np.ndarray:
    import torch

    from archspace.training import resize_batch

    return resize_batch(torch.from_numpy(x), resolution).numpy().astype(np.float32)


def quantize_candidate(supernet: Any, arch: Architecture, dataset: Any, out_dir: Path,
                       calib_images: int = 200, bn_images: int = 500) -> Path:
    """The int8 ONNX model of `arch` (weights inherited from `supernet`, BN recalibrated as for its
    fp32 accuracy), statically quantized with `calib_images` training images. Cached in `out_dir`."""
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from archspace.accuracy import recalibrate_bn
    from archspace.export import export_module

    out_dir = Path(out_dir)
    int8_path = out_dir / "model.int8.onnx"
    if int8_path.exists():
        return int8_path
    out_dir.mkdir(parents=True, exist_ok=True)
    subnet = supernet.subnet(arch)
    recalibrate_bn(subnet, torch.from_numpy(dataset.train_x[:bn_images]), arch.resolution)
    example = torch.randn(1, supernet.in_channels, arch.resolution, arch.resolution)
    fp32_path = export_module(subnet, example, out_dir / "model.recalibrated.onnx", check=True)
    calib = _images(dataset.train_x[:calib_images], arch.resolution)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calib)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {"input": x[None]}

    tmp = int8_path.with_name(int8_path.name + ".tmp")
    quantize_static(str(fp32_path), str(tmp), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    tmp.replace(int8_path)  # atomic: a kill leaves no half-written int8 model to be reused
    return int8_path


def onnx_accuracy(onnx_path: Path, dataset: Any, resolution: int, limit: int | None = None) -> float:
    """Top-1 accuracy (0..1) of an ONNX model (input ``input``, batch 1) on the validation split."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    x = _images(dataset.val_x[:limit], resolution)
    y = dataset.val_y[:limit]
    name = session.get_inputs()[0].name
    correct = sum(int(np.argmax(session.run(None, {name: x[i:i + 1]})[0]) == y[i]) for i in range(len(y)))
    return correct / len(y)
