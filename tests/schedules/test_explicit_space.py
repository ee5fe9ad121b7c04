import random

import pytest

from schedules.explicit_space import ConfigDoesNotFit, GlobalPolicy, LayerShape, ScheduleSpace, check_fits, fits
from schedules.records import ScheduleConfig

SPACE = ScheduleSpace(tile_oc=(1, 4), tile_oh=(1, 2), tile_ow=(1, 2), tile_ic=(1, 2), loop_order=("ohw", "hwo"),
                      inline_pad=(True,), fuse_epilogue=(True, False), vectorize=("none", "oc"),
                      parallel=("none", "outer"), unroll=(0,))
CONV = LayerShape("conv2d", out_channels=8, out_h=6, out_w=6, reduction=4)


def test_enumeration_counts_and_filters():
    all_configs = list(SPACE.enumerate())
    assert len(all_configs) == SPACE.size() == 2 ** 8
    assert len(set(all_configs)) == len(all_configs)
    dense = LayerShape("dense", out_channels=10, reduction=4)
    fitting = list(SPACE.enumerate(dense))
    assert fitting and all(c.tile_oh == c.tile_ow == 1 and c.tile_oc in (1,) for c in fitting)
    assert ScheduleSpace().size() == 6 * 3 * 4 * 5 * 6 * 2 * 2 * 3 * 3 * 3


def test_sample_mutate_crossover_are_deterministic_and_in_space():
    space = ScheduleSpace()
    a = space.sample(random.Random(1), CONV)
    assert a == space.sample(random.Random(1), CONV) and fits(a, CONV)
    assert space.mutate(a, random.Random(2), prob=0.0) == a
    rng = random.Random(3)
    kids = [space.mutate(a, rng, prob=0.5) for _ in range(30)]
    assert sum(k != a for k in kids) > 20
    b = space.sample(random.Random(4))
    c = space.crossover(a, b, random.Random(5))
    for name in ("tile_oc", "loop_order", "vectorize", "unroll", "fuse_epilogue"):
        assert getattr(c, name) in (getattr(a, name), getattr(b, name))


def test_misfits_are_rejected_with_their_reason():
    with pytest.raises(ConfigDoesNotFit, match="tile_oc=16 exceeds the conv2d axis extent 8"):
        check_fits(ScheduleConfig(tile_oc=16, tile_oh=1, tile_ow=1, tile_ic=1), CONV)
    with pytest.raises(ConfigDoesNotFit, match="tile_ow=4 does not divide the conv2d axis extent 6"):
        check_fits(ScheduleConfig(tile_oc=8, tile_oh=1, tile_ow=4, tile_ic=1), CONV)
    with pytest.raises(ConfigDoesNotFit, match="no output columns"):
        check_fits(ScheduleConfig(tile_oc=2, tile_oh=1, tile_ow=1, tile_ic=1, vectorize="ow"),
                   LayerShape("dense", 10, 1, 1, 8))


def test_global_policy_fits_every_layer():
    policy = GlobalPolicy(ScheduleConfig(tile_oc=32, tile_oh=4, tile_ow=8, tile_ic=16, vectorize="ow"))
    shapes = [CONV, LayerShape("depthwise_conv2d", 72, 7, 7, 1), LayerShape("pointwise_conv2d", 24, 14, 14, 96),
              LayerShape("dense", 10, 1, 1, 128)]
    for shape in shapes:
        c = policy.for_layer(shape)
        check_fits(c, shape)
    assert policy.for_layer(CONV).tile_oc == 8 and policy.for_layer(CONV).tile_ow == 2
    assert policy.for_layer(shapes[-1]).vectorize == "oc"


def test_vector_encoding_is_fixed_length_and_distinguishes_configs():
    names = ScheduleConfig.vector_names()
    vectors = {c: c.to_vector() for c in SPACE.enumerate()}
    assert all(len(v) == len(names) for v in vectors.values())
    assert len(set(vectors.values())) == len(vectors)
    assert ScheduleConfig.from_json(ScheduleConfig().to_json()) == ScheduleConfig()
