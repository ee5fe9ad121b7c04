"""The root of every error nacos raises on purpose.

`NacosBaseError` is what a caller catches to tell "nacos refused or could not do this" from a bug;
`UserError` (also a `ValueError`, as the wings' errors always were) is the part that means "the input was
wrong": the command line prints its message and exits 2. Each wing keeps its own subclass
(`ArchSpaceError`, `ScheduleError`, `CostModelError`, `NacosError`), so a message still says which wing
refused, and a disk that filled up (`nacos.errors.DiskFullError`, exit 1) is a `NacosBaseError` that is
not the user's fault.
"""

from __future__ import annotations

__all__ = ["NacosBaseError", "UserError"]


class NacosBaseError(Exception):
    """Root of the errors every wing of nacos raises on purpose (not a bug): catch this to catch them all."""


class UserError(NacosBaseError, ValueError):
    """The input was wrong (a config key, a file, an argument): the message says what to change."""
