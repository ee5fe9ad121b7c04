"""The architecture space: elastic MBConv supernet, Architecture genotypes, ONNX export, layer statistics.

Importing `archspace` is cheap; torch and onnx load with the modules that use them
(`archspace.supernet`, `archspace.training`, `archspace.export`, ...), reached lazily from here.
"""

from __future__ import annotations

import importlib
from typing import Any

from archspace.architecture import Architecture
from archspace.errors import ArchSpaceError, CheckpointError
from archspace.space import ArchSpace, SpaceConfig

_LAZY = {
    "Supernet": "archspace.supernet",
    "SubNet": "archspace.supernet",
    "build_network": "archspace.supernet",
    "TrainConfig": "archspace.train_config",
    "train_supernet": "archspace.training",
    "train_network": "archspace.training",
    "load_supernet": "archspace.training",
    "default_checkpoint_path": "archspace.training",
    "evaluate": "archspace.accuracy",
    "evaluate_accuracy": "archspace.accuracy",
    "evaluate_network": "archspace.accuracy",
    "ImageDataset": "archspace.data",
    "load_dataset": "archspace.data",
    "export_onnx": "archspace.export",
    "read_architecture": "archspace.export",
    "LayerStat": "archspace.stats",
    "onnx_layer_stats": "archspace.stats",
    "peak_memory": "archspace.stats",
    "layer_stats": "archspace.stats",
    "arch_summary": "archspace.stats",
    "SmallCNN": "archspace.zoo",
    "build_zoo_model": "archspace.zoo",
    "conv_layers": "archspace.layers",
    "NB201Arch": "archspace.nb201",
    "NB201Space": "archspace.nb201",
    "NB201Table": "archspace.nb201",
    "build_nb201_network": "archspace.nb201_net",
}

__all__ = ["Architecture", "ArchSpace", "SpaceConfig", "ArchSpaceError", "CheckpointError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'archspace' has no attribute {name!r}")
