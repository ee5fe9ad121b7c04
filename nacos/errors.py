"""The errors the command line turns into a clear message and exit code 2.

Lower wings cannot import `nacos` (DESIGN.md layering), so each raises its own `ValueError`
subclass; `USER_ERRORS` gathers them here in one place.
"""

from __future__ import annotations


class NacosError(Exception):
    """Misuse of the co-search (bad config, foreign run directory, ...): the message says what to change."""


class ConfigError(NacosError, ValueError):
    """A run configuration that does not validate; the message names the key."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Every exception type that means "the input was wrong" rather than "nacos is broken"."""
    from archspace.errors import ArchSpaceError
    from schedules.records import RecordError

    found: list[type[BaseException]] = [NacosError, ArchSpaceError, RecordError, FileNotFoundError]
    for module, name in (("schedules.errors", "ScheduleError"), ("costmodels.errors", "CostModelError")):
        try:
            mod = __import__(module, fromlist=[name])
            found.append(getattr(mod, name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)
