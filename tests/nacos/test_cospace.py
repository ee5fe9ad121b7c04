"""The one-stage genome (`nacos.search.cospace`): one gene per distinct workload, each of which takes
effect in the compiled module (real TVM imports and schedules), and database genes that build with the
tuning database's record of their workload (a real explicit tuning, checked against onnxruntime)."""

from __future__ import annotations

import json
import random

import pytest

from archspace import ArchSpace, SpaceConfig
from nacos.backends.tvm import slot_keys
from nacos.search.cospace import FROM_DATABASE, CoGenome, CoSpace
from schedules.explicit.space import ScheduleSpace

#: two stages of 16 channels at 8x8 and depths up to 3: several layers share a workload
SPACE = {"resolutions": [16], "width_mults": [1.0], "kernel_sizes": [3], "expand_ratios": [3], "depths": [2, 3],
         "stem_channels": 8, "stage_channels": [16, 16], "stage_strides": [2, 1], "head_channels": 16}


@pytest.fixture(scope="module")
def space():
    return ArchSpace(SpaceConfig.from_dict(SPACE))


def test_one_gene_per_distinct_workload_named_by_its_first_layer(space):
    cospace = CoSpace(space, ScheduleSpace())
    for seed in range(20):
        genome = cospace.sample(random.Random(seed))
        keys = slot_keys(genome.arch, space)
        slots = [s for s, _ in genome.schedules]
        assert len(set(keys.values())) == len(slots) < len(keys)        # shared shapes: fewer genes than layers
        assert len({keys[s] for s in slots}) == len(slots)              # each gene a workload of its own
        first = {}
        for slot, key in keys.items():
            first.setdefault(key, slot)
        assert slots == list(first.values())                            # named by its first layer, in order
    per_layer = CoSpace(space, ScheduleSpace(), per_layer=True)
    genome = per_layer.sample(random.Random(0))
    assert [s for s, _ in genome.schedules] == list(slot_keys(genome.arch, space))
    assert all(not isinstance(g, str) for s, g in genome.schedules)     # no database genes on an accelerator


def test_database_genes_are_sampled_mutated_and_read_back(space):
    cospace = CoSpace(space, ScheduleSpace(), database_share=0.5)
    genomes = [cospace.sample(random.Random(seed)) for seed in range(10)]
    genes = [g for genome in genomes for _, g in genome.schedules]
    assert FROM_DATABASE in genes and any(not isinstance(g, str) for g in genes)
    for genome in genomes:
        again = cospace.parse(genome.to_json())
        assert again == genome and again.id == genome.id
        child = cospace.mutate(genome, random.Random(1), prob=0.3)
        assert [s for s, _ in child.schedules] == [s for s, _ in cospace.workloads(child.arch)]
        assert cospace.crossover(genome, genome, random.Random(2)).schedule_of().keys() == genome.schedule_of().keys()
    data = json.loads(genomes[0].to_json())
    data["schedules"][0][1] = "fastest"
    with pytest.raises(ValueError, match="unknown schedule gene 'fastest'"):
        cospace.parse(json.dumps(data))
    assert CoSpace(space, ScheduleSpace(), per_layer=True, database_share=0.5).database_share == 0.0


def test_a_surviving_workload_keeps_its_gene_through_an_architecture_mutation(space):
    cospace = CoSpace(space, ScheduleSpace(), database_share=0.0)
    kept = 0
    for seed in range(10):
        parent = cospace.sample(random.Random(seed))
        child = cospace.mutate(parent, random.Random(seed), prob=0.0)   # prob 0: no gene mutates
        old = {key: g for (s, g), (_, key) in zip(parent.schedules, cospace.workloads(parent.arch))}
        for (slot, gene), (_, key) in zip(child.schedules, cospace.workloads(child.arch)):
            if key in old:
                assert gene == old[key]
                kept += 1
    assert kept > 0


def _scheduled(genome: CoGenome, space, onnx_path, db=None):
    """{function: structural hash of its scheduled PrimFunc}, and the notes, as the backend schedules it."""
    import tvm
    import tvm_ffi

    from nacos.backends.tvm_genome import genome_chooser
    from schedules.explicit.compile import schedule_module
    from schedules.frontend import import_onnx
    from schedules.targets import host_target

    target = host_target(2)
    database = db.on(target).apply_database() if db is not None else None
    mod, notes = schedule_module(import_onnx(onnx_path), genome_chooser(genome, genome.arch, space, onnx_path),
                                 database=database, target=target)
    funcs = {gv.name_hint: tvm_ffi.structural_hash(f) for gv, f in mod.functions.items()
             if isinstance(f, tvm.tirx.PrimFunc)}
    return funcs, notes


def test_each_gene_changes_the_compiled_function_it_names_and_only_that(space, tmp_path):
    from archspace.export import export_onnx

    cospace = CoSpace(space, ScheduleSpace(), database_share=0.0)
    genome = cospace.sample(random.Random(3))
    onnx_path = export_onnx(genome.arch, tmp_path / "m.onnx", space=space, check=False)
    base, notes = _scheduled(genome, space, onnx_path)
    layers = [n for n, v in notes.items() if v != "elementwise"]
    assert layers and all(notes[n] == "ok" for n in layers)            # every conv / dense function has its gene
    assert len(layers) == len(genome.schedules)                         # and every gene a function
    rng = random.Random(0)
    changed_genes = 0
    for i, (slot, gene) in enumerate(genome.schedules):
        for _ in range(12):
            other = ScheduleSpace().sample(rng)
            mutant = CoGenome(genome.arch, genome.schedules[:i] + ((slot, other),) + genome.schedules[i + 1:])
            funcs, _ = _scheduled(mutant, space, onnx_path)
            diff = [n for n in base if funcs[n] != base[n]]
            if diff:
                assert len(diff) == 1 and diff[0] in layers             # the one function this gene names
                changed_genes += 1
                break
    assert changed_genes == len(genome.schedules)                       # no dead gene


def test_database_genes_build_with_the_databases_record(space, tmp_path):
    """A genome of database genes, on a database that holds explicit records of the model's workloads:
    the functions are built with those records (their scheduled functions are the records', not the
    default rule's), the backend's build passes the onnxruntime check, and without records the gene
    falls back to the default rule, saying so."""
    from archspace.export import export_onnx
    from nacos.backends.tvm_genome import GenomeScheduleLatency
    from nacos.config import config_from_dict
    from schedules.database import TuningDatabase
    from schedules.frontend import import_onnx
    from schedules.targets import host_target
    from schedules.tuner import explicit_tune

    cospace = CoSpace(space, ScheduleSpace(), database_share=0.0)
    genome = cospace.sample(random.Random(1))
    all_db = CoGenome(genome.arch, tuple((s, FROM_DATABASE) for s, _ in genome.schedules))
    onnx_path = export_onnx(genome.arch, tmp_path / "m.onnx", space=space, check=False)
    empty = TuningDatabase(tmp_path / "empty")
    _, notes = _scheduled(all_db, space, onnx_path, empty)
    assert {v for v in notes.values() if v != "elementwise"} == {"no database record: default rule"}
    db = TuningDatabase(tmp_path / "db")
    explicit_tune(import_onnx(onnx_path), db, host_target(2), configs_per_task=2, seed=0)
    db.refresh()
    _, notes = _scheduled(all_db, space, onnx_path, db)
    layers = [n for n, v in notes.items() if v != "elementwise"]
    assert layers and all(notes[n] == "database" for n in layers)
    cfg = config_from_dict({"mode": "one-stage", "space": SPACE, "tuning": {
        "database": str(tmp_path / "db"), "repeats": 3, "warmup": 1, "time_onnxruntime": False}})
    lat = GenomeScheduleLatency(cfg, space).latency(all_db, all_db.arch, onnx_path)
    assert lat.ok, lat.reason
    assert lat.details["database_genes"] == len(layers) and lat.details["database_genes_without_record"] == 0
