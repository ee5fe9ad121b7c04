"""The floor under the four wings (see DESIGN.md): what every wing shares and none may own, because a
lower wing cannot import a higher one. It imports nothing first-party.

- `nacos_base.errors`: the one error root (`NacosBaseError`) every wing's errors inherit, so the command
  line maps errors to exit codes in one place (as `optuna.exceptions.OptunaError` does for optuna);
- `nacos_base.records`: a candidate's `Status` and its `Evaluation`, one shape from any objective (the
  supernet's evaluator, the NAS-Bench-201 table) through the executors to the results store.
"""

from __future__ import annotations

from nacos_base.errors import NacosBaseError, UserError
from nacos_base.records import FINAL, Evaluation, Status

__all__ = ["FINAL", "Evaluation", "NacosBaseError", "Status", "UserError"]
