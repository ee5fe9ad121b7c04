import pickle

import pytest
import torch

from archspace import ArchSpace, CheckpointError, SpaceConfig
from archspace.accuracy import evaluate, recalibrate_bn
from archspace.data import load_dataset
from archspace.supernet import Supernet
from archspace.training import TrainConfig, load_supernet, save_checkpoint, train_supernet

# A small space and slice keep the real training short.
SMALL = SpaceConfig(resolutions=(16, 20), width_mults=(0.75, 1.0), kernel_sizes=(3, 5), expand_ratios=(3, 4),
                    depths=(1, 2), stage_channels=(8, 16, 24), stage_strides=(1, 2, 2))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _fresh(seed=0):
    torch.manual_seed(seed)
    return Supernet(ArchSpace(SMALL), in_channels=1, num_classes=10)


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


CFG = TrainConfig(epochs=2, batch_size=32, n_random=1, seed=2)


@pytest.fixture(scope="module")
def straight(digits, tmp_path_factory):
    """An uninterrupted two-epoch run."""
    net = _fresh()
    ckpt = tmp_path_factory.mktemp("straight")
    train_supernet(net, digits.subset(160, 100), CFG, ckpt, progress=False)
    return net, ckpt


def test_resume_after_kill_gives_the_same_weights_as_an_uninterrupted_run(digits, straight, tmp_path):
    import archspace.training as training

    calls = {"n": 0}
    real_save = training.save_checkpoint

    def save_then_die(path, model, meta, optimizer=None):
        real_save(path, model, meta, optimizer)
        calls["n"] += 1
        raise KeyboardInterrupt  # the process dies right after epoch 1 was committed

    training.save_checkpoint = save_then_die
    try:
        with pytest.raises(KeyboardInterrupt):
            train_supernet(_fresh(), digits.subset(160, 100), CFG, tmp_path, progress=False)
    finally:
        training.save_checkpoint = real_save
    assert calls["n"] == 1
    resumed = _fresh(seed=99)  # a new process, other initial weights: all state comes from the file
    summary = train_supernet(resumed, digits.subset(160, 100), CFG, tmp_path, progress=False)
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    assert _same_weights(straight[0], resumed)


def test_resume_with_other_settings_is_refused(digits, straight):
    other = TrainConfig(epochs=3, batch_size=32, n_random=1, seed=2)
    with pytest.raises(CheckpointError, match=r"last.pt: made by a different run .*train_config"):
        train_supernet(_fresh(), digits.subset(160, 100), other, straight[1], progress=False)


def test_training_learns_and_checkpoint_round_trips(digits, tmp_path):
    data = digits.subset(600, 200)
    net = _fresh()
    summary = train_supernet(net, data, TrainConfig(epochs=3, batch_size=50, n_random=0, lr=0.1), tmp_path,
                             progress=False)
    losses = [h["loss"] for h in summary["history"]]
    assert losses[-1] < losses[0]
    space = net.space
    acc_big = evaluate(net, space.largest(), data)
    assert acc_big > 0.5  # ten classes: chance is 0.1
    from archspace.training import finalize_checkpoint

    out = finalize_checkpoint(tmp_path, tmp_path / "final.pt")
    loaded = load_supernet(out, space)
    assert _same_weights(net, loaded)
    assert evaluate(loaded, space.largest(), data) == acc_big
    with pytest.raises(CheckpointError, match=r"final.pt: trained for a different space"):
        load_supernet(out, ArchSpace())


def test_recalibration_changes_bn_statistics_only(digits):
    net = _fresh().eval()
    arch = net.space.sample(1)
    sub = net.subnet(arch)
    weights = [p.detach().clone() for p in sub.parameters()]
    recalibrate_bn(sub, torch.from_numpy(digits.train_x[:200]), arch.resolution)
    assert all(torch.equal(a, b) for a, b in zip(weights, sub.parameters()))
    bn = sub.stem[1]
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    assert not sub.training


def test_bad_checkpoints_are_refused_with_the_file_name(tmp_path):
    evil = tmp_path / "evil.pt"

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    evil.write_bytes(pickle.dumps({"format": "nacos-supernet", "x": Boom()}))
    with pytest.raises(CheckpointError, match="evil.pt: not a readable nacos checkpoint"):
        load_supernet(evil)
    # a torch.save'd object that is not plain data is refused by weights_only loading
    torch.save({"format": "nacos-supernet", "obj": Boom()}, tmp_path / "evil2.pt")
    with pytest.raises(CheckpointError, match="evil2.pt"):
        load_supernet(tmp_path / "evil2.pt")
    net = _fresh()
    save_checkpoint(tmp_path / "ok.pt", net, {"space": net.space.config.to_json(), "in_channels": 1,
                                              "num_classes": 10})
    raw = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="trunc.pt"):
        load_supernet(tmp_path / "trunc.pt")
    with pytest.raises(CheckpointError, match="missing.pt: checkpoint not found"):
        load_supernet(tmp_path / "missing.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt: not a nacos supernet checkpoint"):
        load_supernet(tmp_path / "other.pt")


def test_dataset_and_supernet_must_agree(digits):
    net = Supernet(ArchSpace(SMALL), in_channels=3, num_classes=10)
    with pytest.raises(CheckpointError, match="channels"):
        train_supernet(net, digits, TrainConfig(epochs=1), None, progress=False)
