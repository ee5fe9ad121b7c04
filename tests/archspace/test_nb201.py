"""The NAS-Bench-201 cell space: genotype and string format, operators, enumeration, and the tabular
benchmark (skipped with a reason where ../shared/data/nasbench201 is absent)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archspace.errors import ArchSpaceError
from archspace.nb201 import (
    NB201_OPS,
    NB201Arch,
    NB201Space,
    NB201Table,
    default_table_path,
    live_edges,
)

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
TABLE = default_table_path()
needs_table = pytest.mark.skipif(not TABLE.is_file(), reason=f"NAS-Bench-201 table absent at {TABLE} "
                                                             f"(see ../shared/DATA.md; set $NACOS_NB201_CSV)")


@pytest.fixture(scope="module")
def table() -> NB201Table:
    return NB201Table(TABLE)


def test_string_round_trip_and_edge_order() -> None:
    arch = NB201Arch.from_string(BEST)
    # edges 0->1, 0->2, 1->2, 0->3, 1->3, 2->3
    assert arch.ops == ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3",
                        "nor_conv_1x1")
    assert arch.to_string() == BEST == str(arch)
    assert NB201Arch.from_json(arch.to_json()) == arch
    assert arch.to_json() == '{"arch":"' + BEST + '","space":"nb201"}'
    assert len(arch.id) == 12 and arch.id == NB201Arch(list(arch.ops)).id
    assert hash(arch) == hash(NB201Arch.from_string(BEST)) and len({arch, NB201Arch.from_string(BEST)}) == 1
    with pytest.raises(AttributeError):
        arch.ops = ("none",) * 6  # frozen


@pytest.mark.parametrize("text, message", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "expected 3 nodes"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|", "node 2 needs 2"),
    ("|conv_5x5~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
     "edge 0->1: 'conv_5x5'"),
    ("|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
     "must be 'op~0'"),
    ("nor_conv_3x3~0+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
     "must be '|...|'"),
])
def test_malformed_strings_say_where(text: str, message: str) -> None:
    with pytest.raises(ArchSpaceError, match=message.replace("|", r"\|").replace(".", r"\.")):
        NB201Arch.from_string(text)


def test_bad_json_and_ops() -> None:
    with pytest.raises(ArchSpaceError, match="malformed JSON"):
        NB201Arch.from_json("{")
    with pytest.raises(ArchSpaceError, match="missing field 'arch'"):
        NB201Arch.from_json("{}")
    with pytest.raises(ArchSpaceError, match="unknown field"):
        NB201Arch.from_json('{"arch": "x", "depth": 3}')
    with pytest.raises(ArchSpaceError, match="space must be 'nb201'"):
        NB201Arch.from_json('{"arch": "' + BEST + '", "space": "mbconv"}')
    with pytest.raises(ArchSpaceError, match=r"ops\[4\] \(edge 1->3\): 'conv'"):
        NB201Arch(("none", "none", "none", "none", "conv", "none"))
    with pytest.raises(ArchSpaceError, match="6 edges, got 5"):
        NB201Arch(("none",) * 5)


def test_enumeration_is_a_bijection() -> None:
    space = NB201Space()
    assert space.size() == 15625 == len(NB201_OPS) ** 6
    archs = list(space)
    assert len(set(archs)) == 15625 and len({a.id for a in archs}) == 15625
    assert all(space.index(a) == i for i, a in enumerate(archs))
    assert space.from_index(0).ops == ("none",) * 6 and space.from_index(15624).ops == ("avg_pool_3x3",) * 6
    assert space.parse(BEST) == space.parse(NB201Arch.from_string(BEST).to_json())
    with pytest.raises(ArchSpaceError, match="0..15624"):
        space.from_index(15625)


def test_operators_are_seeded_and_stay_in_the_space() -> None:
    space = NB201Space()
    a = [space.sample(random.Random(3)) for _ in range(2)]
    assert a[0] == a[1]
    rng = random.Random(0)
    counts = np.zeros((6, 5))
    for _ in range(3000):
        arch = space.sample(rng)
        for k, op in enumerate(arch.ops):
            counts[k, NB201_OPS.index(op)] += 1
    assert counts.min() > 450   # uniform: 600 expected per cell, a binomial sd of 22
    parent = space.sample(rng)
    for prob in (0.0, 1 / 6, 1.0):
        for _ in range(200):
            child = space.mutate(parent, rng, prob)
            changed = sum(x != y for x, y in zip(parent.ops, child.ops))
            assert 1 <= changed <= 6 and (prob != 0.0 or changed == 1) and (prob != 1.0 or changed == 6)
    b = space.sample(rng)
    for _ in range(100):
        c = space.crossover(parent, b, rng)
        assert all(op in (x, y) for op, x, y in zip(c.ops, parent.ops, b.ops))
    with pytest.raises(ArchSpaceError, match="prob"):
        space.mutate(parent, rng, 1.5)


def test_missing_table_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="NAS-Bench-201 table not found"):
        NB201Table(tmp_path / "absent.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("index,arch,cifar10_test_acc\n0,x,1\n")
    with pytest.raises(ArchSpaceError, match=rf"{bad}: not a NAS-Bench-201 table: missing column"):
        NB201Table(bad)
    header = "index,arch,cifar10_test_acc,cifar100_test_acc,imagenet16_120_test_acc,lat_ms_pi\n"
    bad.write_text(header + f"0,{BEST},94.3,73.2,46.7,nan\n")
    with pytest.raises(ArchSpaceError, match="line 2: a value is not a finite number"):
        NB201Table(bad)
    bad.write_text(header + f"0,{BEST.replace('nor_conv_1x1', 'conv')},94.3,73.2,46.7,1\n")
    with pytest.raises(ArchSpaceError, match=rf"{bad}: line 2: .*'conv'"):
        NB201Table(bad)


@needs_table
def test_table_holds_the_whole_space_and_the_published_optimum(table: NB201Table) -> None:
    assert len(table) == 15625 and set(table.archs) == set(NB201Space())
    assert len(table.devices) == 10 and {"gold_6226", "raspi4", "pixel3", "eyeriss", "fpga"} <= set(table.devices)
    best = NB201Arch.from_string(BEST)
    assert table.benchmark_index(best) == 6111 and table.accuracy(best, "cifar10") == pytest.approx(94.3733)
    # Index 13714 ties at 94.3733 (the table repeats the figure for that cell) and is 0.12 ms faster.
    top, acc = table.best_under_budget(1e9)
    assert acc == pytest.approx(94.3733) and table.benchmark_index(top) == 13714
    m = table.query(best, "cifar100", "raspi4")
    assert m["accuracy"] == pytest.approx(73.22) and m["latency_ms"] == pytest.approx(68.40410818003875)
    with pytest.raises(ArchSpaceError, match="device 'tpu'"):
        table.latency(best, "tpu")
    with pytest.raises(ArchSpaceError, match="dataset 'mnist'"):
        table.accuracy(best, "mnist")


@needs_table
def test_objective_is_deterministic_and_applies_the_budget(table: NB201Table) -> None:
    f = table.objective("cifar10", "gold_6226", latency_budget_ms=12.0)
    best = NB201Arch.from_string(BEST)
    r = f(best)
    assert r.status == "rejected" and "over the budget 12 ms" in r.reason and r.metrics["latency_ms"] > 12
    assert f(best) == r
    fast = table.best_under_budget(12.0)[0]
    assert f(fast).status == "ok" and f(fast).metrics["accuracy"] == table.best_under_budget(12.0)[1]


@needs_table
@pytest.mark.parametrize("device", ["gold_6226", "raspi4", "eyeriss"])
def test_true_pareto_front_by_definition(table: NB201Table, device: str) -> None:
    acc = table.accuracy_columns["cifar10"]
    lat = table.latency_columns[device]
    front = table.pareto_front("cifar10", device)
    assert len(front) >= 5
    # On the front: no row anywhere is at least as good on both and better on one.
    for r in front:
        assert not np.any((acc >= acc[r]) & (lat <= lat[r]) & ((acc > acc[r]) | (lat < lat[r])))
    # Off the front: some front row dominates it (checked on a sample of 500 rows).
    on = set(front)
    fa, fl = acc[front], lat[front]
    for r in np.random.default_rng(0).choice(len(acc), 500, replace=False):
        if r not in on:
            assert np.any((fa >= acc[r]) & (fl <= lat[r]) & ((fa > acc[r]) | (fl < lat[r])))
    # Sorted by latency, accuracy rising; strictly, except between equal points (isomorphic cells that a
    # latency model such as Eyeriss scores alike), which are all kept.
    assert np.all(np.diff(fl) >= 0) and np.all(np.diff(fa) >= 0)
    assert np.all((np.diff(fa) > 0) | (np.diff(fl) == 0))
    # The best under a budget sits on the front.
    arch, _ = table.best_under_budget(float(np.median(lat)), "cifar10", device)
    assert table.archs.index(arch) in on


_TOKENS = st.sampled_from(["|", "+", "~", "0", "1", "2", "3", *NB201_OPS, "conv", " ", "{", "}", '"', ":"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=120), st.lists(_TOKENS, max_size=40).map("".join),
                 st.builds(lambda ops, k, op: ops[:k] + [op] + ops[k + 1:],
                           st.lists(st.sampled_from(NB201_OPS), min_size=6, max_size=6), st.integers(0, 5),
                           st.one_of(st.sampled_from(NB201_OPS), st.text(max_size=12))
                           ).map(lambda ops: "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                              lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(
                                  ["arch", "space", "ops", "x"]), c, max_size=3), max_leaves=8).map(json.dumps)))
def test_fuzz_nb201_parse_accepts_members_or_says_why(text: str) -> None:
    """Any string: either a member of the space that round-trips, or an `ArchSpaceError` with a message."""
    space = NB201Space()
    try:
        arch = space.parse(text)
    except ArchSpaceError as exc:
        assert str(exc)
    else:
        assert space.parse(arch.to_json()) == arch == space.parse(arch.to_string())
        assert 0 <= space.index(arch) < space.size()


@pytest.mark.parametrize("cell,live", [
    (BEST, [0, 1, 2, 3, 4, 5]),
    # node 1 feeds nothing but none edges: its conv 0->1 is dead; 0->3 is the only path
    ("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", [3]),
    # 0->1->3 is live; 1->2 reaches node 2, which feeds only a none edge: dead
    ("|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|none~0|skip_connect~1|none~2|", [0, 4]),
    # no input-output path at all: the exported network is a constant
    ("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|", []),
])
def test_live_edges_are_those_on_an_input_output_path(cell, live):
    assert live_edges(NB201Arch.from_string(cell).ops) == live


def test_subspace_operators_stay_inside() -> None:
    """A record set's cells as a search space: every operator's result is a member, a mutant never its
    parent, and `nearest` is the member with the fewest differing edges."""
    from archspace.nb201 import NB201Subspace

    members = [NB201Space().from_index(i) for i in range(0, 15625, 97)]
    sub = NB201Subspace(members)
    rng = random.Random(0)
    for _ in range(200):
        a, b = sub.sample(rng), sub.sample(rng)
        m = sub.mutate(a, rng)
        assert sub.contains(m) and m != a
        assert sub.contains(sub.crossover(a, b, rng))
    outside = next(a for a in NB201Space() if not sub.contains(a))
    near = sub.nearest(outside, rng)
    best = min(sum(x != y for x, y in zip(m.ops, outside.ops)) for m in members)
    assert sum(x != y for x, y in zip(near.ops, outside.ops)) == best
    with pytest.raises(ArchSpaceError, match="not one of"):
        sub.check(outside)
    with pytest.raises(ArchSpaceError, match="at least 2"):
        NB201Subspace(members[:1])
