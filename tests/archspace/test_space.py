import itertools
import random

import pytest

from archspace import Architecture, ArchSpace, ArchSpaceError, SpaceConfig

TINY = SpaceConfig(resolutions=(16, 20), width_mults=(1.0,), kernel_sizes=(3, 5), expand_ratios=(3,),
                   depths=(1, 2), stage_channels=(8, 16), stage_strides=(2, 2))


def _enumerate(space: ArchSpace):
    c = space.config
    per_stage = []
    for d in c.depths:
        for ks in itertools.product(c.kernel_sizes, repeat=d):
            for es in itertools.product(c.expand_ratios, repeat=d):
                per_stage.append((d, ks, es))
    for r, w in itertools.product(c.resolutions, c.width_mults):
        for stages in itertools.product(per_stage, repeat=c.num_stages):
            yield Architecture(r, w, tuple(s[0] for s in stages), tuple(s[1] for s in stages),
                               tuple(s[2] for s in stages))


def test_size_matches_enumeration_on_a_tiny_space():
    space = ArchSpace(TINY)
    archs = set(_enumerate(space))
    assert space.size() == len(archs) == 2 * (2 + 4) ** 2
    rng = random.Random(3)
    assert {space.sample(rng) for _ in range(2000)} == archs  # sampling reaches every member


def test_default_space_size():
    assert ArchSpace().size() == 3 * 2 * (9 + 81 + 729) ** 4


def test_sampling_is_deterministic_and_in_space():
    space = ArchSpace()
    a = [space.sample(random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = random.Random(1)
    for _ in range(100):
        space.check(space.sample(rng))
    assert space.sample(5) == space.sample(5)


def test_mutate():
    space = ArchSpace()
    a = space.sample(0)
    assert space.mutate(a, random.Random(1), prob=0.0) == a
    rng = random.Random(2)
    children = [space.mutate(a, rng, prob=0.5) for _ in range(50)]
    assert all(space.contains(c) for c in children)
    assert sum(c != a for c in children) >= 45
    assert space.mutate(a, random.Random(9), 0.3) == space.mutate(a, random.Random(9), 0.3)
    with pytest.raises(ArchSpaceError, match="prob"):
        space.mutate(a, rng, prob=1.5)


def test_crossover_takes_every_gene_from_a_parent():
    space = ArchSpace()
    rng = random.Random(4)
    for _ in range(50):
        a, b = space.sample(rng), space.sample(rng)
        c = space.crossover(a, b, rng)
        space.check(c)
        assert c.resolution in (a.resolution, b.resolution)
        assert c.width_mult in (a.width_mult, b.width_mult)
        for s in range(c.num_stages):
            assert c.depths[s] in (a.depths[s], b.depths[s])
            for i in range(c.depths[s]):
                genes = {(p.kernel_sizes[s][i], p.expand_ratios[s][i]) for p in (a, b) if i < p.depths[s]}
                assert (c.kernel_sizes[s][i], c.expand_ratios[s][i]) in genes
    assert space.crossover(a, a, rng) == a


def test_largest_and_smallest():
    space = ArchSpace()
    big, small = space.largest(), space.smallest()
    space.check(big)
    space.check(small)
    assert big.resolution == 32 and big.depths == (3, 3, 3, 3) and big.kernel_sizes[0] == (7, 7, 7)
    assert small.resolution == 24 and small.depths == (1, 1, 1, 1) and small.expand_ratios[3] == (3,)
