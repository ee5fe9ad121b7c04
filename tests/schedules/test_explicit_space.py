import random

import pytest

from schedules.explicit.space import (
    MIN_LANES,
    ConfigDoesNotFit,
    GlobalPolicy,
    LayerShape,
    ScheduleSpace,
    check_fits,
    contiguous_axis,
    fits,
    largest_divisor_at_most,
)
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
    assert ScheduleSpace().size() == 8 * 7 * 7 * 8 * 6 * 2 * 2 * 3 * 3 * 3


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
    policy = GlobalPolicy(ScheduleConfig(tile_oc=32, tile_oh=4, tile_ow=8, tile_ic=16, vectorize="ow"), adapt=False)
    shapes = [CONV, LayerShape("depthwise_conv2d", 72, 7, 7, 1), LayerShape("pointwise_conv2d", 24, 14, 14, 96),
              LayerShape("dense", 10, 1, 1, 128)]
    for shape in shapes:
        c = policy.for_layer(shape)
        check_fits(c, shape)
    # any divisor, not only powers of two: 6 columns take a tile of 6, 72 channels 24 (<= 32)
    assert policy.for_layer(CONV).tile_oc == 8 and policy.for_layer(CONV).tile_ow == 6
    assert policy.for_layer(shapes[1]).tile_oc == 24 and policy.for_layer(shapes[1]).tile_ow == 7
    assert policy.for_layer(shapes[-1]).vectorize == "oc"


@pytest.mark.parametrize("extent,limit,expected", [(96, 16, 16), (120, 16, 15), (960, 32, 32), (14, 16, 14),
                                                    (7, 4, 1), (7, 8, 7), (10, 8, 5), (1, 16, 1)])
def test_largest_divisor(extent, limit, expected):
    assert largest_divisor_at_most(extent, limit) == expected


# (shape, contiguous axis): OIHW weights and NCHW maps
KINDS = [
    (LayerShape("pointwise_conv2d", 960, 1, 1, 160), "ow"),    # matrix-vector: rfactor over input channels
    (LayerShape("pointwise_conv2d", 96, 16, 16, 16), "ow"),
    (LayerShape("pointwise_conv2d", 96, 2, 2, 384), "ow"),
    (LayerShape("depthwise_conv2d", 960, 1, 1, 1), "oc"),
    (LayerShape("depthwise_conv2d", 384, 2, 2, 1), "oc"),
    (LayerShape("depthwise_conv2d", 144, 8, 8, 1), "ow"),
    (LayerShape("conv2d", 32, 16, 16, 3), "ow"),                # the stem
    (LayerShape("dense", 10, 1, 1, 1280), "oc"),                # weights (K, N): N contiguous
]


@pytest.mark.parametrize("shape,axis", KINDS)
def test_default_rule_vectorises_the_contiguous_axis_with_wide_lanes(shape, axis):
    assert contiguous_axis(shape) == axis
    for config in (ScheduleConfig(), ScheduleConfig(vectorize="oc", tile_ow=1, tile_oh=1, tile_ic=1, tile_oc=1),
                   ScheduleConfig(vectorize="ow", tile_oc=2)):
        c = GlobalPolicy(config).for_layer(shape)
        check_fits(c, shape)
        assert c.vectorize == axis
        if axis == "oc":
            lanes, room = c.tile_oc, shape.out_channels
        elif shape.is_matvec:
            lanes, room = c.tile_ic, shape.reduction
        else:
            lanes = c.tile_ow * (c.tile_oh if c.tile_ow == shape.out_w else 1)
            room = shape.out_h * shape.out_w
        assert lanes >= min(MIN_LANES, room), (config, c)
    # "none" and the non-vector choices stay the config's
    c = GlobalPolicy(ScheduleConfig(vectorize="none", loop_order="hwo", unroll=16, parallel="outer2")).for_layer(shape)
    assert (c.vectorize, c.loop_order, c.unroll, c.parallel) == ("none", "hwo", 16, "outer2")


def test_sampling_for_a_shape_reaches_non_power_of_two_tiles():
    shape = LayerShape("pointwise_conv2d", 24, 7, 7, 72)
    rng = random.Random(0)
    samples = [ScheduleSpace().sample(rng, shape) for _ in range(200)]
    assert all(fits(c, shape) for c in samples)
    assert {c.tile_ow for c in samples} == {1, 7} and {12, 24} <= {c.tile_oc for c in samples}


def test_vector_encoding_is_fixed_length_and_distinguishes_configs():
    names = ScheduleConfig.vector_names()
    vectors = {c: c.to_vector() for c in SPACE.enumerate()}
    assert all(len(v) == len(names) for v in vectors.values())
    assert len(set(vectors.values())) == len(vectors)
    assert ScheduleConfig.from_json(ScheduleConfig().to_json()) == ScheduleConfig()
