"""Errors of the architecture space; each message names the offending field or file."""

from __future__ import annotations

from nacos_base.errors import UserError


class ArchSpaceError(UserError):
    """An architecture, space, dataset or checkpoint that is not valid; the message says which part."""


class CheckpointError(ArchSpaceError):
    """A supernet checkpoint that cannot be used (missing, damaged, or from a different space)."""
