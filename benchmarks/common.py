"""What every benchmark shares: where results go, how they are written (atomically, incrementally),
and the machine / command stamp each result carries."""

from __future__ import annotations

import json
import os
import shlex
import sys
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
    from nacos.machine import machine_info

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
