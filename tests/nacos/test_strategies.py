"""Strategies: registry, settings, the ask/tell contract (determinism, replay, no repeats), and that
each beats random search on the NAS-Bench-201 table."""

from __future__ import annotations

import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archspace import ArchSpace
from archspace.nb201 import NB201Space
from nacos.errors import ConfigError, NacosError
from nacos.results.pareto import hypervolume
from nacos.strategies import STRATEGIES, SearchExhausted, SearchSpace, make_strategy
from tests.nacos.nb201_objectives import TABLE_MISSING, closed_form, table

MULTI = [("accuracy", "max"), ("latency_ms", "min")]
ALL = sorted(STRATEGIES)


def _objectives(name: str):
    return MULTI if name == "nsga2" else [("accuracy", "max")]


def _drive(strategy, evaluate, n: int) -> list[str]:
    """The sequential ask/tell loop; failures (every 7th proposal) told as None."""
    ids = []
    for i in range(n):
        g = strategy.ask()
        ids.append(g.id)
        if i % 7 == 6:
            strategy.tell(g, None, False)
            continue
        r = evaluate(g)
        strategy.tell(g, [r.metrics[o.name] for o in strategy.objectives], r.status == "ok")
    return ids


def _small(name: str, seed: int):
    settings = {"population": 6} if name in ("aging", "nsga2") else {}
    if name == "aging":
        settings["sample_size"] = 3
    return make_strategy(name, NB201Space(), seed, objectives=_objectives(name), **settings)


def test_registry_and_settings_errors() -> None:
    assert set(STRATEGIES) == {"aging", "nsga2", "random"}
    with pytest.raises(ConfigError, match="Unknown strategy: 'cmaes'"):
        make_strategy("cmaes", NB201Space(), 0)
    with pytest.raises(ConfigError, match="strategy.tournament: unknown setting of strategy 'aging'"):
        make_strategy("aging", NB201Space(), 0, tournament=3)
    with pytest.raises(ConfigError, match="strategy.population"):
        make_strategy("nsga2", NB201Space(), 0, population=1)
    with pytest.raises(ConfigError, match="strategy.sample_size"):
        make_strategy("aging", NB201Space(), 0, population=4, sample_size=5)
    with pytest.raises(ConfigError, match="strategy.mutation_prob"):
        make_strategy("aging", NB201Space(), 0, mutation_prob=0.0)
    with pytest.raises(ConfigError, match="seed"):
        make_strategy("random", NB201Space(), "0")
    with pytest.raises(ConfigError, match="lacks"):
        make_strategy("random", object(), 0)
    s = make_strategy("aging", NB201Space(), 0)
    assert make_strategy(s) is s


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 50), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=4), st.lists(st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["aging", "nsga2", "random", "evolution", ""]),
       st.dictionaries(st.sampled_from(["population", "sample_size", "mutation_prob", "crossover_prob",
                                        "max_retries", "tournament"]), _VALUES, max_size=4),
       st.one_of(st.integers(-3, 3), _VALUES))
def test_fuzz_strategy_settings_build_or_raise_config_error(name, settings_, seed) -> None:
    """Any settings: a working strategy, or a `ConfigError` whose message names what is wrong."""
    try:
        s = make_strategy(name, NB201Space(), seed, **settings_)
    except ConfigError as exc:
        assert "strategy" in str(exc) or "seed" in str(exc)
    else:
        g = s.ask()
        s.tell(g, [1.0] * len(s.objectives), True)


def test_spaces_fit_the_protocol() -> None:
    assert isinstance(NB201Space(), SearchSpace) and isinstance(ArchSpace(), SearchSpace)
    # The same strategy class drives the elastic MBConv space too.
    s = make_strategy("aging", ArchSpace(), 1, population=4, sample_size=2)
    seen = set()
    for i in range(10):
        arch = s.ask()
        seen.add(arch.id)
        s.tell(arch, [float(sum(arch.depths) + i % 3)], True)
    assert len(seen) == 10


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_proposals_other_seed_others(name: str) -> None:
    a = _drive(_small(name, 11), closed_form, 60)
    b = _drive(_small(name, 11), closed_form, 60)
    c = _drive(_small(name, 12), closed_form, 60)
    assert a == b
    assert a != c
    assert len(set(a)) == 60     # never a repeat


@pytest.mark.parametrize("name", ALL)
def test_resume_replayed_state_proposes_what_the_original_proposes(name: str) -> None:
    """At every point of a run, a fresh strategy fed the told history proposes the same next genome."""
    original = _small(name, 5)
    _drive(original, lambda g: closed_form(g, 9.0), 45)
    history = original.history
    for k in range(0, 45, 4):
        resumed = _small(name, 5)
        resumed.replay((t.genome, t.objectives, t.feasible) for t in history[:k])
        again = _small(name, 5)
        again.replay((t.genome, t.objectives, t.feasible) for t in history[:k])
        assert resumed.ask() == again.ask() == history[k].genome, k


def test_tell_contract_errors() -> None:
    s = _small("nsga2", 0)
    g = s.ask()
    with pytest.raises(NacosError, match="told 1 value"):
        s.tell(g, [90.0], True)
    with pytest.raises(NacosError, match="NaN"):
        s.tell(g, [90.0, float("nan")], True)
    rec = s.tell(g, None, True)
    assert rec.failed and not rec.feasible        # a failed candidate is never feasible
    with pytest.raises(NacosError, match="told twice"):
        s.tell(g, [90.0, 1.0], True)


@dataclass(frozen=True)
class Bit:
    value: int

    def to_json(self) -> str:
        return f'{{"bit":{self.value}}}'

    @property
    def id(self) -> str:
        return f"bit{self.value}"


class FourBits:
    """A space of four genomes: a strategy must run out of new ones and say so."""

    def sample(self, rng: random.Random) -> Bit:
        return Bit(rng.randrange(4))

    def mutate(self, g: Bit, rng: random.Random, prob: float) -> Bit:
        return Bit((g.value + 1) % 4)

    def crossover(self, a: Bit, b: Bit, rng: random.Random) -> Bit:
        return a

    def parse(self, text: str) -> Bit:
        import json

        return Bit(json.loads(text)["bit"])


@pytest.mark.parametrize("name", ALL)
def test_exhausted_space_raises_search_exhausted(name: str) -> None:
    settings = {"aging": {"population": 2, "sample_size": 2}, "nsga2": {"population": 2}, "random": {}}[name]
    s = make_strategy(name, FourBits(), 0, objectives=_objectives(name), **settings)
    for _ in range(4):
        g = s.ask()
        s.tell(g, [float(g.value)] * len(s.objectives), True)
    assert sorted(t.genome.value for t in s.history) == [0, 1, 2, 3]
    with pytest.raises(SearchExhausted, match="no new candidate"):
        s.ask()


def test_aging_ranks_feasible_above_infeasible_above_failed() -> None:
    s = _small("aging", 0)
    genomes = [s.ask() for _ in range(3)]
    good, over_budget, failed = (s.tell(genomes[0], [80.0], True), s.tell(genomes[1], [95.0], False),
                                 s.tell(genomes[2], None, False))
    assert s.fitness_key(good) > s.fitness_key(over_budget) > s.fitness_key(failed)
    assert s.best() == good


def test_strategies_import_neither_torch_nor_tvm() -> None:
    code = ("import sys, nacos.strategies, nacos.search.loop, nacos.results.store, nacos.results.pareto, "
            "archspace.nb201; "
            "bad = [m for m in ('torch', 'tvm') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


# -- against random search on the real table -----------------------------------------------------------
needs_table = pytest.mark.skipif(bool(TABLE_MISSING), reason=TABLE_MISSING or "table present")
SEEDS = range(20)
DEVICE = "gold_6226"


def _search(name: str, seed: int, n: int, budget: float | None):
    t = table()
    objective = t.objective("cifar10", DEVICE, budget)
    s = make_strategy(name, NB201Space(), seed, objectives=_objectives(name))
    best, points = -np.inf, []
    for _ in range(n):
        g = s.ask()
        r = objective(g)
        s.tell(g, [r.metrics[o.name] for o in s.objectives], r.status == "ok")
        points.append((r.metrics["accuracy"], r.metrics["latency_ms"]))
        if r.status == "ok":
            best = max(best, r.metrics["accuracy"])
    return best, points


@needs_table
def test_aging_evolution_beats_random_search_on_nb201() -> None:
    """Best CIFAR-10 accuracy, mean over 20 seeds (a fixed, deterministic set of runs).

    Measured here, 100 queries unconstrained: aging 94.24 vs random 93.84 (per-seed std 0.13 and 0.17, so
    the standard error of the difference of means is about 0.05); the test asks for 0.25, 3 standard errors
    below what was measured. Under a 12 ms budget (Xeon Gold 6226) with 300 queries: 93.91 vs 93.76 (std
    0.10 and 0.16, standard error 0.04); the test asks for 0.05, and that the budget is respected.
    """
    aging = [_search("aging", s, 100, None)[0] for s in SEEDS]
    rand = [_search("random", s, 100, None)[0] for s in SEEDS]
    assert np.mean(aging) > np.mean(rand) + 0.25, (np.mean(aging), np.mean(rand))
    aging_b = [_search("aging", s, 300, 12.0)[0] for s in SEEDS]
    rand_b = [_search("random", s, 300, 12.0)[0] for s in SEEDS]
    assert np.mean(aging_b) > np.mean(rand_b) + 0.05, (np.mean(aging_b), np.mean(rand_b))
    assert max(aging_b) <= table().best_under_budget(12.0, "cifar10", DEVICE)[1]


@needs_table
def test_nsga2_front_beats_random_search_on_nb201() -> None:
    """Hypervolume ratio to the true front (accuracy vs Xeon Gold 6226 latency), 300 queries, 20 seeds.

    Reference point: accuracy 80 %, latency 21 ms (just past the slowest cell, 20.37 ms). Measured here:
    NSGA-II 0.978 vs random 0.942 (per-seed std 0.007 and 0.020, standard error of the difference 0.005);
    the test asks for a gap of 0.01, and that no run exceeds the truth.
    """
    t = table()
    ref = (80.0, 21.0)
    true_hv = hypervolume(t.front_points("cifar10", DEVICE), ["max", "min"], ref)
    ratio = {name: [hypervolume(_search(name, s, 300, None)[1], ["max", "min"], ref) / true_hv for s in SEEDS]
             for name in ("nsga2", "random")}
    assert np.mean(ratio["nsga2"]) > np.mean(ratio["random"]) + 0.01, {k: np.mean(v) for k, v in ratio.items()}
    assert max(max(v) for v in ratio.values()) <= 1.0 + 1e-12
