"""The one-stage TVM backend: the genome's own schedule gene for each distinct workload.

TVM builds one function per distinct workload (layers of one shape share it), so the one-stage genome
holds one gene per distinct workload (`nacos.search.cospace`), and each gene is the schedule of exactly
one compiled function: an explicit `ScheduleConfig`, or `FROM_DATABASE`, the tuning database's best
record of that workload (so one-stage can reach the schedules MetaSchedule found). A compiled conv /
dense function that no gene names fails the build with its name, instead of running unscheduled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nacos.backends.base import Built
from nacos.backends.tvm import TVMBackend, configs_by_layer_key, model_io, slot_keys

__all__ = ["GenomeScheduleLatency", "genome_chooser"]


def genome_chooser(genome: Any, arch: Any, space: Any, onnx_path: Path):
    """`choose(function name, layer key)` for `schedules.measure.compile_scheduled`: the gene of the
    function's workload (explicit configs clamped to fit their layer, as a global policy would be;
    `FROM_DATABASE` as it is), None for a function no gene names."""
    from schedules.explicit.space import GlobalPolicy, LayerShape

    by_key = configs_by_layer_key(genome, slot_keys(arch, space, *model_io(onnx_path)))

    def choose(name: str, key: tuple):
        config = by_key.get(key)
        if config is None or isinstance(config, str):
            return config
        return GlobalPolicy(config).for_layer(LayerShape(*key[:5]))

    choose.genes = by_key  # type: ignore[attr-defined]
    return choose


class GenomeScheduleLatency(TVMBackend):
    """The one-stage genome's gene per distinct workload (config or database record)."""

    name = "tvm-genome-schedules"
    reads_database = True

    def __init__(self, cfg: Any, space) -> None:
        super().__init__(cfg)
        self.space = space
        self._db = None

    @classmethod
    def from_config(cls, cfg: Any, space: Any = None) -> GenomeScheduleLatency:
        return cls(cfg, space)

    @property
    def db(self) -> Any:
        """The tuning database the database genes read (opened on first use: reading it takes seconds)."""
        if self._db is None:
            from schedules.database import TuningDatabase

            self._db = TuningDatabase(Path(self.cfg.tuning.database))
        return self._db

    def describe(self, genome: Any) -> dict[str, Any]:
        return {"source": "one-stage genome", "database": str(self.cfg.tuning.database),
                "layers": [[s, c if isinstance(c, str) else c.to_dict()] for s, c in genome.schedules]}

    def _build(self, genome: Any, arch: Any, onnx_path: Path) -> Built:
        from schedules.explicit.compile import FROM_DATABASE
        from schedules.measure import compile_scheduled

        choose = genome_chooser(genome, arch, self.space, onnx_path)
        uses_db = any(isinstance(c, str) and c == FROM_DATABASE for c in choose.genes.values())
        if uses_db:
            self.db.refresh()  # what other processes committed meanwhile
        compiled, notes = compile_scheduled(onnx_path, choose, self.target, self.db if uses_db else None)
        # "elementwise": the fused elementwise functions, scheduled by the elementwise rule, are not layers
        missing = sorted(n for n, v in notes.items() if v == "no config")
        if missing:
            return Built(False, reason=f"the genome names no schedule for {len(missing)} compiled function(s): "
                                       f"{', '.join(missing[:4])}", seconds=compiled.seconds)
        unfit = sorted(n for n, v in notes.items() if v.startswith("does not fit"))
        return self._built(compiled, {"unscheduled_layers": len(unfit),
                                      "database_genes": sum(v == "database" for v in notes.values()),
                                      "database_genes_without_record":
                                          sum(v.startswith("no database record") for v in notes.values())})
