"""Bytes per element of each numeric precision the project reports (parameters, peak activation
memory, energy). Plain data with no imports: `archspace.stats` and `costmodels` both read this one
table (DESIGN.md lets costmodels read the plain data the other wings produce)."""

from __future__ import annotations

__all__ = ["PRECISION_BYTES"]

PRECISION_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "int8": 1}
