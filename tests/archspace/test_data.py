import pickle

import numpy as np
import pytest

from archspace import ArchSpaceError
from archspace.data import load_dataset, stratified_split


def test_mnist5k_split_is_stratified_shuffled_and_deterministic():
    data = load_dataset("mnist5k", val_fraction=0.2, seed=0)
    assert data.train_x.shape == (4000, 1, 28, 28) and data.val_x.shape == (1000, 1, 28, 28)
    assert np.bincount(data.val_y).tolist() == [100] * 10
    assert np.bincount(data.train_y).tolist() == [400] * 10
    assert len(set(data.train_y[:50].tolist())) > 5  # shuffled: the source rows are ordered by class
    assert abs(float(data.train_x.mean())) < 1e-3 and abs(float(data.train_x.std()) - 1) < 1e-2
    again = load_dataset("mnist5k", val_fraction=0.2, seed=0)
    assert np.array_equal(again.val_y, data.val_y) and np.array_equal(again.train_x[:5], data.train_x[:5])


def test_split_has_no_overlap():
    labels = np.repeat(np.arange(3), 10)
    tr, va = stratified_split(labels, 0.3, 1)
    assert not set(tr) & set(va) and len(tr) + len(va) == 30
    with pytest.raises(ArchSpaceError, match="val_fraction"):
        stratified_split(labels, 1.5, 1)


def test_npz_and_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (40, 16, 16, 3), dtype=np.uint8)
    labels = np.repeat([3, 7], 20)
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    data = load_dataset(tmp_path / "d.npz")
    assert data.in_channels == 3 and data.num_classes == 2 and data.image_size == 16
    root = tmp_path / "folder"
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(images[i, :, :, 0]).save(root / cls / f"{i}.png")
    data = load_dataset(root)
    assert data.in_channels == 1 and data.num_classes == 2 and len(data.train_y) + len(data.val_y) == 12


def test_pickles_are_refused(tmp_path):
    np.savez(tmp_path / "obj.npz", images=np.array([object()] * 12, dtype=object), labels=np.arange(12))
    with pytest.raises(ArchSpaceError, match="unpickling"):
        load_dataset(tmp_path / "obj.npz")
    cifar = tmp_path / "cifar"
    cifar.mkdir()
    (cifar / "data_batch_1").write_bytes(pickle.dumps({"data": 1}))
    with pytest.raises(ArchSpaceError, match="pickles and are never loaded"):
        load_dataset(cifar)


def test_cifar_binary_batches(tmp_path):
    rng = np.random.default_rng(1)
    records = np.concatenate([np.repeat(np.arange(10, dtype=np.uint8), 2)[:, None],
                              rng.integers(0, 255, (20, 3072), dtype=np.uint8)], axis=1)
    records.tofile(tmp_path / "data_batch_1.bin")
    data = load_dataset(tmp_path)
    assert data.in_channels == 3 and data.image_size == 32 and data.num_classes == 10


def test_bad_dataset_specs(tmp_path):
    with pytest.raises(ArchSpaceError, match="not a known name"):
        load_dataset("imagenet")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ArchSpaceError, match=r"\.npz"):
        load_dataset(tmp_path / "x.txt")
    np.savez(tmp_path / "nolabels.npz", images=np.zeros((12, 8, 8)))
    with pytest.raises(ArchSpaceError, match="'images' and 'labels'"):
        load_dataset(tmp_path / "nolabels.npz")
