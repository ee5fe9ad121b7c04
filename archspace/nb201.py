"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020) as a second search space, with its tabular
ground truth: published accuracies joined with latencies measured on ten devices (`../shared/DATA.md`).

- `NB201Arch`: the genotype, the operation on each of the 6 edges of the 4-node cell, in the order of
  the benchmark's string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (edges 0->1, 0->2, 1->2, 0->3, 1->3,
  2->3). Frozen, hashable, JSON round-trip, a stable short id.
- `NB201Space`: sample / mutate / crossover (the operators `nacos.strategies` use), membership checks,
  and a mixed-radix index 0..15624 (edge 0 the most significant digit, operations in `NB201_OPS`
  order). That index is this module's own enumeration; the benchmark's row index, which follows the
  original release's order, is `NB201Table.benchmark_index`.
- `NB201Table`: the CSV as numpy columns; a deterministic objective (accuracy, device latency) for a
  search, the true Pareto front and the true best under a latency budget. `sample_cells`: a seeded
  sample of its connected cells.
- The compiled-latency record set (`load_records`; its layout `record_columns` / `record_schema`,
  `RECORD_FORMAT`, `RECORD_WAYS`): another latency source in the table's layout.

Only numpy and the standard library: the PyTorch network of a cell is `archspace.nb201_net`, the MACs
of its exported network `archspace.nb201_macs`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archspace.errors import ArchSpaceError
from nacos_base.records import Evaluation, Status

__all__ = [
    "DATASETS",
    "NB201_EDGES",
    "NB201_OPS",
    "NB201Arch",
    "NB201Space",
    "NB201Subspace",
    "NB201Table",
    "RECORD_FORMAT",
    "RECORD_WAYS",
    "TabularObjective",
    "default_table_path",
    "load_records",
    "record_columns",
    "record_schema",
    "records_table_path",
    "live_edges",
    "sample_cells",
]

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (from node, to node) of each edge, in the string's order
NB201_EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
#: dataset name -> CSV column of its 200-epoch test accuracy (percent)
DATASETS = {"cifar10": "cifar10_test_acc", "cifar100": "cifar100_test_acc",
            "imagenet16_120": "imagenet16_120_test_acc"}
_LAT_PREFIX = "lat_ms_"
_ENV_PATH = "NACOS_NB201_CSV"


def live_edges(ops: Sequence[str]) -> list[int]:
    """Edges that lie on a path from the cell's input (node 0) to its output (node 3) through non-`none`
    edges. The exported graph keeps only these: a dead edge's output is dropped, and a cell whose output
    does not depend on its input is folded to a constant (with all that precedes it)."""
    on = [k for k, op in enumerate(ops) if op != "none"]
    reach, back = {0}, {3}
    for k in sorted(on, key=lambda k: NB201_EDGES[k][1]):          # forward in node order
        if NB201_EDGES[k][0] in reach:
            reach.add(NB201_EDGES[k][1])
    for k in sorted(on, key=lambda k: -NB201_EDGES[k][0]):         # backward
        if NB201_EDGES[k][1] in back:
            back.add(NB201_EDGES[k][0])
    return [k for k in on if NB201_EDGES[k][0] in reach and NB201_EDGES[k][1] in back]


def _rng(rng: random.Random | int | None) -> random.Random:
    return rng if isinstance(rng, random.Random) else random.Random(rng)


@dataclass(frozen=True)
class NB201Arch:
    """One cell: `ops[k]` is the operation on edge `NB201_EDGES[k]`."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.ops, str) or not isinstance(self.ops, (tuple, list)):
            raise ArchSpaceError(f"ops: must be a list of {len(NB201_EDGES)} operation names, got {self.ops!r}")
        object.__setattr__(self, "ops", tuple(self.ops))
        if len(self.ops) != len(NB201_EDGES):
            raise ArchSpaceError(f"ops: a NAS-Bench-201 cell has {len(NB201_EDGES)} edges, got {len(self.ops)}")
        for k, op in enumerate(self.ops):
            if op not in NB201_OPS:
                i, j = NB201_EDGES[k]
                raise ArchSpaceError(f"ops[{k}] (edge {i}->{j}): {op!r} is not one of {NB201_OPS}")

    # -- the benchmark's string ---------------------------------------------------------------------
    @classmethod
    def from_string(cls, text: str) -> NB201Arch:
        """Parse ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``; errors say which node or edge is wrong."""
        if not isinstance(text, str):
            raise ArchSpaceError(f"NAS-Bench-201 string: expected str, got {type(text).__name__}")
        nodes = text.strip().split("+")
        if len(nodes) != 3:
            raise ArchSpaceError(f"NAS-Bench-201 string {text!r}: expected 3 nodes separated by '+', "
                                 f"got {len(nodes)}")
        ops: list[str] = []
        for j, node in enumerate(nodes, start=1):
            if not (node.startswith("|") and node.endswith("|")) or len(node) < 2:
                raise ArchSpaceError(f"NAS-Bench-201 string {text!r}: node {j} {node!r} must be '|...|'")
            tokens = node[1:-1].split("|")
            if len(tokens) != j:
                raise ArchSpaceError(f"NAS-Bench-201 string {text!r}: node {j} needs {j} input edge(s), "
                                     f"got {len(tokens)}")
            for i, tok in enumerate(tokens):
                op, sep, src = tok.partition("~")
                if not sep or src != str(i):
                    raise ArchSpaceError(f"NAS-Bench-201 string {text!r}: edge {tok!r} of node {j} must be "
                                         f"'op~{i}'")
                if op not in NB201_OPS:
                    raise ArchSpaceError(f"NAS-Bench-201 string {text!r}: edge {i}->{j}: {op!r} is not one "
                                         f"of {NB201_OPS}")
                ops.append(op)
        return cls(tuple(ops))

    def to_string(self) -> str:
        o = self.ops
        return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"

    def __str__(self) -> str:
        return self.to_string()

    # -- JSON and identity ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"space": "nb201", "arch": self.to_string()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NB201Arch:
        if not isinstance(data, Mapping):
            raise ArchSpaceError(f"NAS-Bench-201 architecture: expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"space", "arch"})
        if unknown:
            raise ArchSpaceError(f"NAS-Bench-201 architecture: unknown field(s) {unknown}")
        if "arch" not in data:
            raise ArchSpaceError("NAS-Bench-201 architecture: missing field 'arch'")
        if data.get("space", "nb201") != "nb201":
            raise ArchSpaceError(f"NAS-Bench-201 architecture: space must be 'nb201', got {data['space']!r}")
        return cls.from_string(data["arch"])

    @classmethod
    def from_json(cls, text: str | bytes) -> NB201Arch:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArchSpaceError(f"NAS-Bench-201 architecture: malformed JSON ({exc})") from exc
        return cls.from_dict(data)

    @property
    def id(self) -> str:
        """First 12 hex digits of the SHA-1 of the canonical JSON."""
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:12]


@dataclass(frozen=True)
class NB201Space:
    """All 5^6 = 15,625 cells, with the search operators (every random choice from the rng handed in)."""

    ops: tuple[str, ...] = NB201_OPS

    def __post_init__(self) -> None:
        if tuple(self.ops) != NB201_OPS:
            raise ArchSpaceError(f"NB201Space: the operation set is fixed by the benchmark, {NB201_OPS}")

    # -- membership and enumeration ---------------------------------------------------------------
    def size(self) -> int:
        return len(NB201_OPS) ** len(NB201_EDGES)

    def check(self, arch: NB201Arch) -> None:
        if not isinstance(arch, NB201Arch):
            raise ArchSpaceError(f"NB201Space: expected an NB201Arch, got {type(arch).__name__}")

    def contains(self, arch: Any) -> bool:
        return isinstance(arch, NB201Arch)

    def parse(self, text: str | bytes) -> NB201Arch:
        """The genome JSON (``{"arch": ...}``) or the benchmark's string."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        return NB201Arch.from_string(text) if text.lstrip().startswith("|") else NB201Arch.from_json(text)

    def index(self, arch: NB201Arch) -> int:
        """This space's enumeration: the ops as base-5 digits, edge 0 the most significant."""
        self.check(arch)
        value = 0
        for op in arch.ops:
            value = value * len(NB201_OPS) + NB201_OPS.index(op)
        return value

    def from_index(self, index: int) -> NB201Arch:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < self.size():
            raise ArchSpaceError(f"NB201Space.from_index: index must be in 0..{self.size() - 1}, got {index!r}")
        digits = []
        index = int(index)
        for _ in NB201_EDGES:
            index, d = divmod(index, len(NB201_OPS))
            digits.append(NB201_OPS[d])
        return NB201Arch(tuple(reversed(digits)))

    def __iter__(self) -> Iterator[NB201Arch]:
        return (self.from_index(i) for i in range(self.size()))

    # -- search operators -------------------------------------------------------------------------
    def sample(self, rng: random.Random | int | None = None) -> NB201Arch:
        rng = _rng(rng)
        return NB201Arch(tuple(rng.choice(NB201_OPS) for _ in NB201_EDGES))

    def mutate(self, arch: NB201Arch, rng: random.Random | int | None = None, prob: float = 1 / 6) -> NB201Arch:
        """Each edge takes a different operation with probability `prob`; at least one edge always changes
        (with none drawn, one edge chosen uniformly does), so a mutant is never its parent."""
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0.0 <= prob <= 1.0:
            raise ArchSpaceError(f"mutate: prob must be in [0, 1], got {prob!r}")
        self.check(arch)
        rng = _rng(rng)
        ops = list(arch.ops)
        changed = [k for k in range(len(ops)) if rng.random() < prob]
        if not changed:
            changed = [rng.randrange(len(ops))]
        for k in changed:
            ops[k] = rng.choice([op for op in NB201_OPS if op != ops[k]])
        return NB201Arch(tuple(ops))

    def crossover(self, a: NB201Arch, b: NB201Arch, rng: random.Random | int | None = None) -> NB201Arch:
        """Uniform crossover: each edge's operation from either parent with equal probability."""
        self.check(a)
        self.check(b)
        rng = _rng(rng)
        return NB201Arch(tuple(x if rng.random() < 0.5 else y for x, y in zip(a.ops, b.ops)))


class NB201Subspace:
    """The cells of a table that holds only some of the space (a measured record set): the same search
    operators as `NB201Space`, each result moved to the nearest member (fewest differing edges; ties
    drawn from the rng), so every strategy that runs on the whole space runs on the subset and only
    ever asks for cells the table has. A mutant is never its parent."""

    def __init__(self, archs: Sequence[NB201Arch]) -> None:
        self.archs: tuple[NB201Arch, ...] = tuple(dict.fromkeys(archs))
        if len(self.archs) < 2:
            raise ArchSpaceError(f"NB201Subspace: needs at least 2 distinct cells, got {len(self.archs)}")
        self._members = frozenset(self.archs)
        self._space = NB201Space()

    def size(self) -> int:
        return len(self.archs)

    def check(self, arch: NB201Arch) -> None:
        if arch not in self._members:
            raise ArchSpaceError(f"NB201Subspace: {arch} is not one of its {len(self.archs)} cells")

    def contains(self, arch: Any) -> bool:
        return arch in self._members

    def parse(self, text: str | bytes) -> NB201Arch:
        arch = self._space.parse(text)
        self.check(arch)
        return arch

    def __iter__(self) -> Iterator[NB201Arch]:
        return iter(self.archs)

    def nearest(self, arch: NB201Arch, rng: random.Random | int | None = None,
                exclude: NB201Arch | None = None) -> NB201Arch:
        """The member with the fewest edges different from `arch` (not `exclude`), ties drawn from `rng`."""
        rng = _rng(rng)
        best, ties = len(NB201_EDGES) + 1, []
        for m in self.archs:
            if m == exclude:
                continue
            d = sum(x != y for x, y in zip(m.ops, arch.ops))
            if d < best:
                best, ties = d, [m]
            elif d == best:
                ties.append(m)
        return ties[0] if len(ties) == 1 else rng.choice(ties)

    def sample(self, rng: random.Random | int | None = None) -> NB201Arch:
        return _rng(rng).choice(self.archs)

    def mutate(self, arch: NB201Arch, rng: random.Random | int | None = None, prob: float = 1 / 6) -> NB201Arch:
        rng = _rng(rng)
        return self.nearest(self._space.mutate(arch, rng, prob), rng, exclude=arch)

    def crossover(self, a: NB201Arch, b: NB201Arch, rng: random.Random | int | None = None) -> NB201Arch:
        rng = _rng(rng)
        return self.nearest(self._space.crossover(a, b, rng), rng)


# ---------------------------------------------------------------------------------------------------
# The tabular benchmark
# ---------------------------------------------------------------------------------------------------
def default_table_path() -> Path:
    """``$NACOS_NB201_CSV`` if set, else ``../shared/data/nasbench201/nb201_accuracy_latency.csv`` beside
    the repository (where DATA.md keeps it)."""
    env = os.environ.get(_ENV_PATH)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "nasbench201" / "nb201_accuracy_latency.csv"


_ENV_RECORDS = "NACOS_NB201_RECORDS"
#: the ways a record set's cells were compiled and timed (each a ``lat_ms_<way>`` column, plus ``deployed``)
RECORD_WAYS = ("onnxruntime", "tvm_untuned", "tvm_default", "tvm_tuned")
#: the version of the record layout (a change of columns or of what a way means bumps it)
RECORD_FORMAT = "nacos-nb201-records/1"


def records_table_path() -> Path:
    """``$NACOS_NB201_RECORDS`` if set, else the record set the project publishes
    (``benchmarks/results/nb201_records.csv`` in the repository): NAS-Bench-201 cells compiled and timed
    here four ways (``onnxruntime``, ``tvm_untuned``, ``tvm_default``, ``tvm_tuned``, and ``deployed``,
    the better of onnxruntime and tuned TVM), written by ``python -m benchmarks.nb201_records``."""
    env = os.environ.get(_ENV_RECORDS)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "nb201_records.csv"


def load_records(path: str | Path | None = None) -> "NB201Table":
    """The compiled-latency record set as an `NB201Table`: its "devices" are the ways it was timed, so
    ``table.objective(device="tvm_tuned")`` and every strategy run on it as on the published table. It
    holds the measured cells only (a stratified sample unless every cell was measured)."""
    return NB201Table(path if path is not None else records_table_path())


def record_columns(accuracy_columns: Sequence[str] = tuple(DATASETS.values())) -> list[tuple[str, str, str]]:
    """(name, JSON type, description) of every column of a record set's CSV, in order: the NAS-Bench-201
    table's layout (so `NB201Table` reads it, its ways as devices) plus each way's spread, the MACs, the
    conv tasks and the stratum the cell was drawn from."""
    cols = [("index", "integer", "the cell's index in NAS-Bench-201"),
            ("arch", "string", "the cell's architecture string, |op~i|+|op~i|op~i|+|...|")]
    cols += [(c, "number", f"published test accuracy ({c}, %), from the NAS-Bench-201 table") for c in accuracy_columns]
    what = {"onnxruntime": "onnxruntime (CPU provider)", "tvm_untuned": "TVM, no database (dlight defaults)",
            "tvm_default": "TVM, one fixed default ScheduleConfig for every conv / dense layer",
            "tvm_tuned": "TVM with the pretuned database's best records"}
    cols += [(f"{_LAT_PREFIX}{w}", "number", f"median latency (ms) here: {what[w]}") for w in RECORD_WAYS]
    cols += [(f"{_LAT_PREFIX}deployed", "number",
              "min(lat_ms_onnxruntime, lat_ms_tvm_tuned): what a careful user ships")]
    cols += [(f"std_ms_{w}", "number", f"standard deviation (ms) of the timed runs: {what[w]}") for w in RECORD_WAYS]
    cols += [("macs", "integer", "multiply-accumulates of the exported network"),
             ("conv_tasks", "integer", "distinct conv / dense tasks TVM extracts from the network"),
             ("conv_tasks_in_database", "integer", "of those, tasks the tuning database holds a record of"),
             ("stratum", "integer", "stratum of published latency on the reference device the cell was drawn from")]
    return cols


def record_schema(cols: Sequence[tuple[str, str, str]], reference_device: str) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of one row of the record set with columns `cols` (`record_columns`)."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "NAS-Bench-201 compiled-latency record",
            "description": f"one row of nb201_records.csv ({RECORD_FORMAT}); reference device "
                           f"{reference_device}, measured as benchmarks/nb201_records.py describes",
            "type": "object", "required": [c for c, _, _ in cols], "additionalProperties": False,
            "properties": {c: {"type": t, "description": d} for c, t, d in cols}}


@dataclass(frozen=True)
class TabularObjective:
    """genome -> (accuracy, latency on one device) from the table; deterministic. Over a hard latency
    budget the candidate is `rejected` (its metrics still recorded)."""

    table: NB201Table = field(repr=False)
    dataset: str = "cifar10"
    device: str = "gold_6226"
    latency_budget_ms: float | None = None

    def __call__(self, arch: NB201Arch) -> Evaluation:
        metrics = self.table.query(arch, self.dataset, self.device)
        if self.latency_budget_ms is not None and metrics["latency_ms"] > self.latency_budget_ms:
            return Evaluation(Status.REJECTED, metrics, f"latency {metrics['latency_ms']:.4f} ms on {self.device} "
                                                       f"over the budget {self.latency_budget_ms:g} ms")
        return Evaluation(Status.OK, metrics)


class NB201Table:
    """The benchmark CSV: one row per architecture, accuracies and per-device latencies as numpy arrays."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_table_path()
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: NAS-Bench-201 table not found (see ../shared/DATA.md; "
                                    f"set ${_ENV_PATH} to point at a copy)")
        with open(self.path, newline="") as fh:
            reader = csv.reader(fh)
            try:
                header = next(reader)
            except StopIteration:
                raise ArchSpaceError(f"{self.path}: empty file, expected a NAS-Bench-201 table") from None
            required = ["index", "arch", *DATASETS.values()]
            missing = [c for c in required if c not in header]
            self.devices: tuple[str, ...] = tuple(c[len(_LAT_PREFIX):] for c in header if c.startswith(_LAT_PREFIX))
            if missing or not self.devices:
                raise ArchSpaceError(f"{self.path}: not a NAS-Bench-201 table: missing column(s) "
                                     f"{missing + ([] if self.devices else [_LAT_PREFIX + '<device>'])}")
            col = {name: i for i, name in enumerate(header)}
            rows = list(reader)
        n = len(rows)
        self.archs: list[NB201Arch] = []
        self.benchmark_indices = np.empty(n, dtype=np.int64)
        numeric = [*DATASETS.values(), *(_LAT_PREFIX + d for d in self.devices)]
        data = np.empty((n, len(numeric)))
        for r, row in enumerate(rows):
            where = f"{self.path}: line {r + 2}"
            if len(row) != len(header):
                raise ArchSpaceError(f"{where}: {len(row)} fields, the header has {len(header)}")
            try:
                self.archs.append(NB201Arch.from_string(row[col["arch"]]))
                self.benchmark_indices[r] = int(row[col["index"]])
                data[r] = [float(row[col[c]]) for c in numeric]
            except (ValueError, ArchSpaceError) as exc:
                raise ArchSpaceError(f"{where}: {exc}") from exc
        if not np.all(np.isfinite(data)):
            bad = int(np.flatnonzero(~np.all(np.isfinite(data), axis=1))[0])
            raise ArchSpaceError(f"{self.path}: line {bad + 2}: a value is not a finite number")
        self._row = {a: i for i, a in enumerate(self.archs)}
        if len(self._row) != n:
            raise ArchSpaceError(f"{self.path}: an architecture appears twice")
        self.accuracy_columns = {d: data[:, numeric.index(c)] for d, c in DATASETS.items()}
        self.latency_columns = {d: data[:, numeric.index(_LAT_PREFIX + d)] for d in self.devices}

    def __len__(self) -> int:
        return len(self.archs)

    # -- lookups ----------------------------------------------------------------------------------
    def _check(self, dataset: str | None = None, device: str | None = None) -> None:
        if dataset is not None and dataset not in DATASETS:
            raise ArchSpaceError(f"dataset {dataset!r}: choose one of {sorted(DATASETS)}")
        if device is not None and device not in self.latency_columns:
            raise ArchSpaceError(f"device {device!r}: choose one of {list(self.devices)}")

    def row(self, arch: NB201Arch) -> int:
        try:
            return self._row[arch]
        except KeyError:
            raise ArchSpaceError(f"{arch.to_string()}: not in the table {self.path}") from None

    def benchmark_index(self, arch: NB201Arch) -> int:
        """The architecture's index in the benchmark's own order (the CSV's `index` column)."""
        return int(self.benchmark_indices[self.row(arch)])

    def accuracy(self, arch: NB201Arch, dataset: str = "cifar10") -> float:
        self._check(dataset=dataset)
        return float(self.accuracy_columns[dataset][self.row(arch)])

    def latency(self, arch: NB201Arch, device: str = "gold_6226") -> float:
        self._check(device=device)
        return float(self.latency_columns[device][self.row(arch)])

    def query(self, arch: NB201Arch, dataset: str = "cifar10", device: str = "gold_6226") -> dict[str, Any]:
        """The metrics a search records: accuracy (%), latency_ms on `device`, and where they came from."""
        self._check(dataset, device)
        r = self.row(arch)
        return {"accuracy": float(self.accuracy_columns[dataset][r]),
                "latency_ms": float(self.latency_columns[device][r]),
                "benchmark_index": int(self.benchmark_indices[r]), "arch": arch.to_string(),
                "dataset": dataset, "device": device}

    def objective(self, dataset: str = "cifar10", device: str = "gold_6226",
                  latency_budget_ms: float | None = None) -> TabularObjective:
        self._check(dataset, device)
        if latency_budget_ms is not None and not (isinstance(latency_budget_ms, (int, float))
                                                  and math.isfinite(latency_budget_ms) and latency_budget_ms > 0):
            raise ArchSpaceError(f"latency_budget_ms: must be a positive finite number, got {latency_budget_ms!r}")
        return TabularObjective(self, dataset, device, latency_budget_ms)

    # -- ground truth -----------------------------------------------------------------------------
    def pareto_front(self, dataset: str = "cifar10", device: str = "gold_6226") -> list[int]:
        """Rows of the true front of (accuracy max, latency min), by ascending latency. Equal points are
        all kept (neither dominates the other)."""
        self._check(dataset, device)
        acc = self.accuracy_columns[dataset]
        lat = self.latency_columns[device]
        order = np.lexsort((-acc, lat))        # latency ascending, accuracy descending among equals
        front: list[int] = []
        best = -math.inf                       # best accuracy among strictly lower latencies
        i, n = 0, len(order)
        while i < n:
            j = i
            while j < n and lat[order[j]] == lat[order[i]]:
                j += 1
            top = acc[order[i]]
            if top > best:
                front.extend(int(r) for r in order[i:j] if acc[r] == top)
                best = top
            i = j
        return front

    def front_points(self, dataset: str = "cifar10", device: str = "gold_6226") -> np.ndarray:
        """(k, 2) array of (accuracy, latency_ms) on the true front."""
        rows = self.pareto_front(dataset, device)
        return np.column_stack([self.accuracy_columns[dataset][rows], self.latency_columns[device][rows]])

    def best_under_budget(self, budget_ms: float, dataset: str = "cifar10",
                          device: str = "gold_6226") -> tuple[NB201Arch, float] | None:
        """The most accurate architecture with latency <= `budget_ms` (lowest latency among ties)."""
        self._check(dataset, device)
        acc = self.accuracy_columns[dataset]
        lat = self.latency_columns[device]
        ok = np.flatnonzero(lat <= budget_ms)
        if ok.size == 0:
            return None
        r = min(ok, key=lambda i: (-acc[i], lat[i], i))
        return self.archs[int(r)], float(acc[r])

    def archs_at(self, rows: Sequence[int]) -> list[NB201Arch]:
        return [self.archs[int(r)] for r in rows]


def sample_cells(table: NB201Table, n: int, seed: int) -> list[int]:
    """`n` distinct rows of `table` (all of them when it holds fewer) drawn with `random.Random(seed)` from
    its connected cells (some path of live edges from input to output: the others export to a constant),
    sorted. The same (table, n, seed) gives the same rows, so a benchmark and its test agree on them."""
    pool = [i for i, a in enumerate(table.archs) if live_edges(a.ops)]
    return sorted(random.Random(seed).sample(pool, min(n, len(pool))))
