import random

import pytest
import torch
from torch import nn

from archspace import ArchSpace, ArchSpaceError
from archspace.supernet import DynamicDepthwiseConv2d, Supernet, build_network


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    net = Supernet(ArchSpace(), in_channels=1, num_classes=10)
    # Non-trivial BN statistics and kernel transforms, so that slicing mistakes show.
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
        if isinstance(m, DynamicDepthwiseConv2d):
            for p in m.transforms.values():
                p.data += 0.05 * torch.randn_like(p)
    return net.eval()


def test_subnet_output_equals_supernet(supernet):
    space = supernet.space
    rng = random.Random(0)
    archs = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(8)]
    for arch in archs:
        x = torch.randn(3, 1, arch.resolution, arch.resolution)
        sub = supernet.subnet(arch).eval()
        with torch.no_grad():
            expected, got = supernet(x, arch), sub(x)
        assert got.shape == (3, 10)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_subnet_is_a_standalone_copy(supernet):
    arch = supernet.space.sample(3)
    sub = supernet.subnet(arch)
    before = supernet.stem.weight.detach().clone()
    with torch.no_grad():
        for p in sub.parameters():
            p.add_(1.0)
    assert torch.equal(supernet.stem.weight, before)
    assert not any(p is q for p in sub.parameters() for q in supernet.parameters())
    # plain layers only: it exports and runs without the supernet
    assert not any(type(m).__name__.startswith("Dynamic") for m in sub.modules())


def test_shared_weights_follow_once_for_all_rules(supernet):
    space = supernet.space
    small = space.smallest()
    sub = supernet.subnet(small)
    # fewer channels are the first channels
    stem_out = space.stem_channels(small.width_mult)
    assert torch.equal(sub.stem[0].weight, supernet.stem.weight[:stem_out])
    # a shallower stage skips its last blocks: one block per stage
    assert len(sub.blocks) == small.num_stages
    # a smaller kernel is the centre of the larger one through the learned transforms
    dw = supernet.stages[0][0].depthwise
    mid = sub.blocks[0].expand[0].out_channels
    w7 = dw.weight[:mid]
    centre5 = w7[:, :, 1:6, 1:6].reshape(mid, 25) @ dw.transforms["7to5"]
    w3 = centre5.reshape(mid, 1, 5, 5)[:, :, 1:4, 1:4].reshape(mid, 9) @ dw.transforms["5to3"]
    torch.testing.assert_close(sub.blocks[0].depthwise[0].weight, w3.reshape(mid, 1, 3, 3))


def test_identity_transforms_give_the_centre_crop():
    dw = DynamicDepthwiseConv2d(8, (3, 5, 7), stride=1)
    torch.testing.assert_close(dw.active_weight(8, 3), dw.weight[:, :, 2:5, 2:5])
    torch.testing.assert_close(dw.active_weight(4, 5), dw.weight[:4, :, 1:6, 1:6])
    with pytest.raises(ValueError, match="kernel size 9"):
        dw.active_weight(8, 9)


def test_gradients_reach_shared_weights_and_transforms(supernet):
    net = Supernet(ArchSpace())
    arch = net.space.smallest()
    net(torch.randn(2, 1, 24, 24), arch).sum().backward()
    dw = net.stages[0][0].depthwise
    assert dw.transforms["5to3"].grad is not None and dw.transforms["5to3"].grad.abs().sum() > 0
    assert net.stages[0][1].expand.weight.grad is None  # skipped block gets no gradient


def test_out_of_space_subnet_is_refused(supernet):
    arch = supernet.space.sample(0)
    bad = type(arch)(arch.resolution, 0.5, arch.depths, arch.kernel_sizes, arch.expand_ratios)
    with pytest.raises(ArchSpaceError, match="width_mult: 0.5"):
        supernet.subnet(bad)
    with pytest.raises(ArchSpaceError):
        build_network(bad)
