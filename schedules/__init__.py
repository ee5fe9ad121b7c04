"""The inner loop: TVM import, per-workload schedule search, a shared tuning database, measurement.

Importing this package is cheap: TVM is imported by the modules that need it, so that
`costmodels/` can read `schedules.records` without paying for `import tvm`.
"""

from schedules.records import LayerWorkload, Measurement, ScheduleConfig

__all__ = ["LayerWorkload", "Measurement", "ScheduleConfig"]
