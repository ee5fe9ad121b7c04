"""What every benchmark shares: where results go, how they are written (atomically, incrementally),
and the machine / command stamp each result carries.

The harness (a new benchmark needs only these):

- `Size` + `add_sizes` / `resolve_sizes`: ``--quick`` and the options whose default differs between a
  quick run (minutes, what the tests run) and the full one; an option the user gives wins over both.
- `ResultFile`: the result JSON of one run. It resumes the previous file when that file's ``settings``
  equal this run's (else starts afresh), stamps command, machine and times, and `save()` rewrites it
  atomically, so a benchmark saves after every unit of work and a killed run loses at most one.
- `ResultFile.figure` / `ResultFile.table`: the PNG and the markdown table beside the JSON
  (`save_figure`, `markdown_table`).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def command_line() -> str:
    """The command that is running, as a user would retype it from the repository root."""
    argv = list(sys.argv)
    root = Path(__file__).resolve().parent.parent
    script = Path(argv[0]).resolve() if argv else None
    if script is not None and script.suffix == ".py" and script.is_relative_to(root):
        argv[0] = "-m " + ".".join(script.relative_to(root).with_suffix("").parts)
    elif script is not None:
        argv[0] = script.name  # called from elsewhere (e.g. a test runner): keep only the program's name
    return "python " + " ".join(shlex.quote(a) if i else a for i, a in enumerate(argv))


def machine() -> dict[str, Any]:
    from nacos.results.machine import machine_info

    return machine_info()


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` to `path` atomically (temporary file, fsync, rename): a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(payload, fh, indent=2, sort_keys=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The previous result at `path` (for resuming), or None when absent."""
    path = Path(path)
    if not path.exists():
        return None
    return json.loads(path.read_text())


def save_figure(fig: Any, path: Path, dpi: int = 110) -> None:
    """Save a matplotlib figure atomically (temporary file, rename) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)


def add_nb201_csv_argument(parser: Any) -> None:
    """The ``--csv`` option of the benchmarks that read the NAS-Bench-201 table."""
    parser.add_argument("--csv", type=Path, default=None, help="NAS-Bench-201 table (default: $NACOS_NB201_CSV or "
                                                               "../shared/data/nasbench201/)")


def nb201_table_or_skip(name: str, csv: Path | None) -> Path | None:
    """The NAS-Bench-201 table's path (``--csv`` or the default); None, after saying why on stderr, when absent."""
    from archspace.nb201 import default_table_path

    path = Path(csv or default_table_path())
    if not path.is_file():
        print(f"{name}: skipped: NAS-Bench-201 table absent at {path} (see ../shared/DATA.md; "
              f"set $NACOS_NB201_CSV or pass --csv)", file=sys.stderr)
        return None
    return path


# -- the harness: quick / full sizes, a resumable result file, figure, markdown table ---------------------
@dataclass(frozen=True)
class Size:
    """One option whose default differs between ``--quick`` and a full run."""

    quick: Any
    full: Any
    help: str
    type: Callable[[str], Any] = int


def add_sizes(parser: argparse.ArgumentParser, sizes: Mapping[str, Size], quick_help: str) -> None:
    """``--quick`` and one ``--NAME`` option per entry of `sizes` (its default None: `resolve_sizes` fills it)."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    for name, size in sizes.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=size.type, default=None,
                            help=f"{size.help} (default {size.full}, quick {size.quick})".replace("%", "%%"))


def resolve_sizes(args: argparse.Namespace, sizes: Mapping[str, Size]) -> argparse.Namespace:
    """Each option of `sizes` the user left out: its quick value under ``--quick``, its full value otherwise."""
    for name, size in sizes.items():
        if getattr(args, name, None) is None:
            setattr(args, name, size.quick if args.quick else size.full)
    return args


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class ResultFile:
    """The result JSON of one benchmark run at `path`: the previous file's content when it is this
    benchmark's and its ``settings`` equal `settings` (`resumed`; the work it holds is not redone), else
    a fresh payload. `payload` is the dict to fill; `save()` rewrites the file atomically."""

    def __init__(self, name: str, path: Path, settings: Mapping[str, Any], *, resume: bool = True) -> None:
        self.name, self.path = name, Path(path)
        settings = json.loads(json.dumps(settings))  # as it reads back from the file (tuples -> lists)
        previous = read_json(self.path) if resume else None
        self.resumed = bool(previous and previous.get("benchmark") == name and previous.get("settings") == settings)
        if self.resumed:
            self.payload: dict[str, Any] = previous
        else:
            self.payload = {"benchmark": name, "settings": settings, "machine": machine(), "started": _now()}
        self.payload["command"] = command_line()

    def save(self) -> None:
        """Stamp the time and rewrite the file atomically (a kill leaves the previous save whole)."""
        self.payload["updated"] = _now()
        write_json(self.path, self.payload)

    def figure(self, fig: Any, suffix: str = ".png") -> Path:
        """Save a matplotlib figure beside the JSON (same name, `suffix`) atomically and close it."""
        path = self.path.with_suffix(suffix)
        save_figure(fig, path)
        return path

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], *, digits: int = 3,
              suffix: str = ".md") -> str:
        """`markdown_table(header, rows)`, written beside the JSON (same name, `suffix`) and returned."""
        text = markdown_table(header, rows, digits=digits)
        path = self.path.with_suffix(suffix)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
        return text


def spearman_or_none(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho (`costmodels.metrics.spearman`) for a result file: None where it is undefined
    (fewer than 3 pairs, or a constant side), so the JSON holds null rather than NaN."""
    from costmodels.metrics import spearman

    if len(x) < 3:
        return None
    rho = spearman(x, y)
    return rho if math.isfinite(rho) else None


def geomean_or_none(xs: Iterable[float | None]) -> float | None:
    """The geometric mean of the positive finite values of `xs` (None and the rest skipped); None if none."""
    good = [x for x in xs if x is not None and x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in good) / len(good)) if good else None


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, digits: int = 3) -> str:
    """A GitHub markdown table: floats with `digits` decimals, None and NaN as "-", numbers right-aligned."""
    def cell(x: Any) -> str:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "-"
        if isinstance(x, float):
            return f"{x:.{digits}f}"
        return str(x).replace("|", "\\|")

    def numeric(j: int) -> bool:
        return all(isinstance(r[j], (int, float)) or r[j] is None for r in rows) if rows else False

    for r in rows:
        if len(r) != len(header):
            raise ValueError(f"markdown_table: a row of {len(r)} cells under {len(header)} columns: {list(r)}")
    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---:" if numeric(j) else "---" for j in range(len(header))) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def ratio_ci(a: Sequence[float], b: Sequence[float], resamples: int, seed: int = 0) -> tuple[float, list[float]]:
    """mean(a) / mean(b) and its 95 % paired percentile-bootstrap interval: `a[i]` and `b[i]` are one seed's
    figures of the two sides (same seed, same budget), and the seeds are resampled together."""
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(resamples, len(a)))
    boot = a[idx].mean(axis=1) / np.maximum(b[idx].mean(axis=1), 1e-300)
    return float(a.mean() / b.mean()), [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]
