import json
import random

import pytest

from archspace import Architecture, ArchSpace, ArchSpaceError, SpaceConfig


def _arch(**kw):
    base = dict(resolution=28, width_mult=1.0, depths=(1, 2), kernel_sizes=((3,), (5, 7)),
                expand_ratios=((4,), (3, 6)))
    base.update(kw)
    return Architecture(**base)


def test_json_round_trip_hash_and_id():
    a = _arch()
    b = Architecture.from_json(a.to_json())
    assert a == b and hash(a) == hash(b) and a.id == b.id
    assert len(a.id) == 12 and int(a.id, 16) >= 0
    assert {a, b} == {a}
    # lists in, tuples stored: still equal and hashable
    c = Architecture(28, 1, [1, 2], [[3], [5, 7]], [[4], [3, 6]])
    assert c == a and c.id == a.id


def test_id_is_stable_across_versions():
    # The id is part of every results store: changing it silently would orphan old runs.
    a = _arch()
    assert a.to_json() == ('{"depths":[1,2],"expand_ratios":[[4],[3,6]],"kernel_sizes":[[3],[5,7]],'
                           '"resolution":28,"width_mult":1.0}')
    assert a.id == "5e506cad1a8e"


def test_different_architectures_have_different_ids():
    space = ArchSpace()
    rng = random.Random(0)
    archs = {space.sample(rng) for _ in range(200)}
    assert len({a.id for a in archs}) == len(archs)


@pytest.mark.parametrize("kw, field", [
    (dict(resolution=0), "resolution"),
    (dict(resolution=28.5), "resolution"),
    (dict(width_mult=-1), "width_mult"),
    (dict(width_mult=True), "width_mult"),
    (dict(depths=(1, 0)), "depths[1]"),
    (dict(kernel_sizes=((3,), (5,))), "kernel_sizes[1]"),
    (dict(kernel_sizes=((4,), (5, 7))), "kernel_sizes[0][0]"),
    (dict(expand_ratios=((4,), (3, "6"))), "expand_ratios[1][1]"),
    (dict(expand_ratios=((4,),)), "expand_ratios"),
])
def test_validation_names_the_field(kw, field):
    with pytest.raises(ArchSpaceError) as err:
        _arch(**kw)
    assert str(err.value).startswith(field)


def test_malformed_json_and_missing_fields():
    with pytest.raises(ArchSpaceError, match="malformed JSON"):
        Architecture.from_json("{not json")
    d = _arch().to_dict()
    del d["depths"]
    with pytest.raises(ArchSpaceError, match="missing field.*depths"):
        Architecture.from_json(json.dumps(d))
    with pytest.raises(ArchSpaceError, match="unknown field.*colour"):
        Architecture.from_dict({**_arch().to_dict(), "colour": 1})
    with pytest.raises(ArchSpaceError, match="expected a JSON object"):
        Architecture.from_json("[1, 2]")


def test_space_check_names_out_of_space_choice():
    space = ArchSpace()
    a = space.sample(1)
    bad = a.to_dict()
    bad["kernel_sizes"][2][0] = 9
    with pytest.raises(ArchSpaceError) as err:
        space.parse(json.dumps(bad))
    assert str(err.value).startswith("kernel_sizes[2][0]: 9 not in")
    bad = a.to_dict()
    bad["resolution"] = 8
    with pytest.raises(ArchSpaceError, match=r"resolution: 8 not in .*at least 16 pixels"):
        space.parse(json.dumps(bad))
    bad = a.to_dict()
    bad["expand_ratios"][0][0] = 5
    with pytest.raises(ArchSpaceError, match=r"expand_ratios\[0\]\[0\]: 5"):
        space.check(Architecture.from_dict(bad))
    three_stages = Architecture(28, 1.0, (1, 1, 1), ((3,),) * 3, ((3,),) * 3)
    with pytest.raises(ArchSpaceError, match="3 stages, the space has 4"):
        space.check(three_stages)


def test_space_config_validation():
    with pytest.raises(ArchSpaceError, match="resolutions.*below the network's total stride 16"):
        SpaceConfig(resolutions=(8, 28))
    with pytest.raises(ArchSpaceError, match="kernel_sizes"):
        SpaceConfig(kernel_sizes=(3, 4))
    with pytest.raises(ArchSpaceError, match="unknown key.*kernels"):
        SpaceConfig.from_dict({"kernels": [3]})
    cfg = SpaceConfig(resolutions=(32, 24))
    assert SpaceConfig.from_json(cfg.to_json()) == cfg
