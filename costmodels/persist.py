"""Saving and loading cost models without pickle.

A model is a directory:

    meta.json        kind, format version, feature names and version, config, library versions,
                     training-set digest, booster file names
    booster_<i>.json XGBoost's own JSON model format (or .ubj, XGBoost's universal binary JSON)
    train.npz        the training set (X, y, groups), so that `update()` can continue after a load;
                     read with numpy's allow_pickle=False

TVM's own XGBModel.load unpickles its files (a crafted file runs code on load); nothing here does.
Loading checks the kind, the format version, the feature names and version against the code that
loads, and the training-set digest against the arrays, and says which one differs. `verify_model_dir`
runs those checks on a saved model of any known kind and returns a `ModelFinding` (the first damaged
JSON file and line named), moving a damaged directory aside with ``repair=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from costmodels.errors import CostModelError

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFinding", "training_digest", "library_versions", "save_model_dir",
           "load_model_dir", "verify_model_dir"]

FORMAT = "nacos-costmodel"
FORMAT_VERSION = 1
_BOOSTER_SUFFIXES = (".json", ".ubj")


def training_digest(X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> str:
    """sha256 over the training arrays (shape, dtype and bytes), so a model names the data it saw."""
    h = hashlib.sha256()
    for arr in (np.ascontiguousarray(X, dtype=np.float64), np.ascontiguousarray(y, dtype=np.float64),
                np.ascontiguousarray(np.asarray(groups).astype(str))):
        h.update(str(arr.shape).encode())
        h.update(str(arr.dtype).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("nacos", "xgboost-cpu", "xgboost", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_model_dir(path: str | os.PathLike, *, kind: str, feature_names: Sequence[str], feature_version: int,
                   config: dict[str, Any], boosters: Sequence[Any], X: np.ndarray, y: np.ndarray,
                   groups: np.ndarray, extra: dict[str, Any] | None = None, fmt: str = "json") -> Path:
    if fmt not in ("json", "ubj"):
        raise CostModelError(f"booster format must be 'json' or 'ubj', got {fmt!r}")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for i, booster in enumerate(boosters):
        name = f"booster_{i}.{fmt}"
        booster.save_model(str(out / name))  # XGBoost's own format, chosen by the suffix
        names.append(name)
    groups_s = np.asarray(groups).astype(str)
    tmp = out / f".train.tmp{os.getpid()}.npz"
    np.savez(tmp, X=np.asarray(X, dtype=np.float64), y=np.asarray(y, dtype=np.float64), groups=groups_s)
    os.replace(tmp, out / "train.npz")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "feature_version": feature_version,
        "feature_names": list(feature_names),
        "config": config,
        "versions": library_versions(),
        "training_digest": training_digest(X, y, groups_s),
        "n_train": int(len(y)),
        "boosters": names,
        "extra": extra or {},
    }
    _atomic_write(out / "meta.json", (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return out


def load_model_dir(path: str | os.PathLike, *, kind: str, feature_version: int) -> dict[str, Any]:
    """Read and check a saved model; returns meta plus `boosters` (loaded) and the arrays X, y, groups.

    The caller checks `meta["feature_names"]` against the names its config implies.
    """
    import xgboost as xgb

    root = Path(path)
    meta_path = root / "meta.json"
    if not meta_path.is_file():
        raise CostModelError(f"{root}: not a saved cost model (no meta.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CostModelError(f"{meta_path}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CostModelError(f"{meta_path}: not a {FORMAT} file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CostModelError(f"{meta_path}: format version {meta.get('format_version')} but this nacos reads "
                             f"version {FORMAT_VERSION}; retrain the model")
    if meta.get("kind") != kind:
        raise CostModelError(f"{meta_path}: holds a {meta.get('kind')}, not a {kind}")
    if meta.get("feature_version") != feature_version:
        raise CostModelError(f"{meta_path}: features of version {meta.get('feature_version')}, this code computes "
                             f"version {feature_version}; retrain the model on the current features")
    boosters = []
    for name in meta.get("boosters", []):
        if "/" in name or "\\" in name or not name.endswith(_BOOSTER_SUFFIXES):
            raise CostModelError(f"{meta_path}: refusing booster file name {name!r} (only local .json / .ubj)")
        fpath = root / name
        head = fpath.read_bytes()[:2] if fpath.is_file() else b""
        if not head:
            raise CostModelError(f"{fpath}: missing or empty booster file")
        if head[:1] == b"\x80":
            raise CostModelError(f"{fpath}: looks like a pickle; cost models are XGBoost JSON/UBJ only")
        booster = xgb.Booster()
        try:
            booster.load_model(str(fpath))
        except xgb.core.XGBoostError as exc:
            raise CostModelError(f"{fpath}: XGBoost could not read it ({str(exc).splitlines()[0]})") from exc
        boosters.append(booster)
    if not boosters:
        raise CostModelError(f"{meta_path}: lists no booster files")
    try:
        with np.load(root / "train.npz", allow_pickle=False) as data:
            X, y, groups = data["X"], data["y"], data["groups"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:   # a damaged zip fails its CRC
        raise CostModelError(f"{root / 'train.npz'}: unreadable training arrays ({exc})") from exc
    if training_digest(X, y, groups) != meta.get("training_digest"):
        raise CostModelError(f"{root}: train.npz does not match the training-set digest in meta.json")
    if X.ndim != 2 or X.shape[1] != len(meta["feature_names"]):
        raise CostModelError(f"{root}: training arrays have {X.shape} columns, meta lists "
                             f"{len(meta['feature_names'])} features")
    meta["boosters_loaded"] = boosters
    meta["X"], meta["y"], meta["groups"] = X, y, groups
    return meta


def check_feature_names(meta: dict[str, Any], expected: Sequence[str], where: str) -> None:
    saved = list(meta.get("feature_names", []))
    if saved != list(expected):
        missing = [n for n in expected if n not in saved][:5]
        extra = [n for n in saved if n not in expected][:5]
        raise CostModelError(f"{where}: the saved model's features do not match this code's "
                             f"({len(saved)} saved vs {len(expected)} expected; missing {missing}, "
                             f"unexpected {extra}); retrain the model")


# ---------------------------------------------------------------------------------------------------
# Verifying a saved model
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelFinding:
    """The verdict of `verify_model_dir` on one saved model directory."""

    path: str
    ok: bool                       # loads with its kind's own loader, every check passed
    problem: str = ""              # why it does not load ("" when ok)
    line: int | None = None        # line of the first JSON error, when a JSON file does not parse
    kind: str | None = None        # the kind meta.json names, when it names a known one
    repaired: bool = False         # the directory was moved aside
    moved_to: str | None = None    # where it went


def _model_kinds() -> dict[str, Any]:
    """Kind name (meta.json's ``kind``) -> the class whose ``load(path)`` reads it."""
    # imported here: both modules import this one
    from costmodels.arch_latency import ArchLatencyModel
    from costmodels.ranker import ScheduleRanker

    return {cls.KIND: cls for cls in (ArchLatencyModel, ScheduleRanker)}


def _json_error(path: Path) -> tuple[int | None, str] | None:
    try:
        json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        return exc.lineno, f"{path.name}: not JSON ({exc.msg}, line {exc.lineno} column {exc.colno})"
    except UnicodeDecodeError as exc:
        return None, f"{path.name}: not UTF-8 text ({exc.reason})"
    except OSError as exc:
        return None, f"{path.name}: unreadable ({exc.strerror or exc})"
    return None


def _printable(text: object, limit: int = 200) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))[:limit]


def _problem(root: Path) -> tuple[str | None, int | None, str | None]:
    """(why the model at `root` does not load or None, the JSON line, the kind)."""
    # Step 1. meta.json parses and names a kind this code knows.
    err = _json_error(root / "meta.json")
    if err:
        return err[1], err[0], None
    meta = json.loads((root / "meta.json").read_bytes())
    kind = meta.get("kind") if isinstance(meta, dict) else None
    cls = _model_kinds().get(kind) if isinstance(kind, str) else None
    if cls is None:
        return f"meta.json: unknown cost-model kind {kind if isinstance(meta, dict) else meta!r}", None, None
    # Step 2. Each JSON booster parses (so the file and line are named, not just XGBoost's complaint).
    names = meta.get("boosters", [])
    for name in names if isinstance(names, list) else []:
        if isinstance(name, str) and name.endswith(".json") and "/" not in name and (root / name).is_file():
            err = _json_error(root / name)
            if err:
                return err[1], err[0], kind
    # Step 3. The kind's own loader: format and feature versions, feature names, boosters, digest.
    try:
        cls.load(root)
    except (CostModelError, KeyError, TypeError, ValueError) as exc:
        return _printable(exc, 300), None, kind
    return None, None, kind


def verify_model_dir(path: str | os.PathLike, *, repair: bool = False) -> ModelFinding:
    """Check the saved model at `path` (any kind `save_model_dir` writes for `ArchLatencyModel` or
    `ScheduleRanker`): meta.json and the JSON boosters parse, and the model loads with its kind's checks.

    Nothing is written unless `repair`: then a damaged directory is moved aside whole, to
    ``<path>.damaged-<UTC time>`` (nothing is deleted; a model is retrained from its data).
    """
    root = Path(path)
    why, line, kind = _problem(root)
    if why is None:
        return ModelFinding(str(root), True, kind=kind)
    if not repair:
        return ModelFinding(str(root), False, why, line, kind)
    base = root.with_name(f"{root.name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    aside, n = base, 0
    while aside.exists():
        n += 1
        aside = base.with_name(f"{base.name}~{n}")
    os.replace(root, aside)
    return ModelFinding(str(root), False, why, line, kind, repaired=True, moved_to=str(aside))
