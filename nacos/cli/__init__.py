"""The `nacos` command line. Each subcommand is one module of this package with a `register`
function; adding a command is one new file and one line in `COMMANDS`."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

#: (subcommand module under nacos.cli, one-line help). Modules are imported lazily so that
#: `nacos --help` stays fast (no torch / tvm import).
COMMANDS: tuple[tuple[str, str], ...] = (
    ("search", "run a co-search (baseline, two-stage or one-stage); rerun to resume"),
    ("report", "make the tables and plots of a run directory"),
    ("space", "sample architectures of the space, export and check each, print their statistics"),
    ("train_supernet", "train (or resume training) the weight-sharing supernet"),
    ("calibrate", "measure this machine's peak FLOP/s and memory bandwidth (cached per machine), or with "
                  "--nb201-shots K its latency of every NAS-Bench-201 cell from K measured ones"),
    ("doctor", "check a run directory's files (config, store, tuning database, models); --repair moves damage aside"),
    ("pretune", "tune every distinct task of the architecture space into the shared database (resumable)"),
    ("tune", "tune a model's unseen workloads into the tuning database; time it beside onnxruntime"),
    ("eval", "score one architecture: inherited-weight accuracy, MACs, params, peak memory, latency"),
    ("export", "export a run's candidate: ONNX, compiled TVM library, schedule records, card.json"),
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nacos",
        description="Compiler-in-the-loop co-search of neural architectures and TVM schedules.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name, help_text in COMMANDS:
        module = importlib.import_module(f"nacos.cli.{module_name}")
        cmd = sub.add_parser(
            module_name.replace("_", "-"),
            help=help_text,
            description=(module.__doc__ or help_text).strip(),
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.register(cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from nacos.errors import DiskFullError, disk_full_cause, user_errors

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except DiskFullError as exc:
        print(f"nacos {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except user_errors() as exc:
        print(f"nacos {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `nacos ... | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:
        # A full disk met outside a search loop (setup, report, tune, export). The results store commits in
        # SQLite transactions, configs, checkpoints and exported models are replaced atomically (temporary
        # file, then rename) and reports are remade from the store: the failed write loses nothing before it.
        if disk_full_cause(exc) is None:
            raise
        print(f"nacos {args.command}: error: disk full ({type(exc).__name__}: {exc}); the write that failed was "
              f"not completed and nothing written before it is lost; free some space and rerun", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"nacos {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
