"""The one error type of `costmodels/`: misuse or bad input, with a message that says what to change."""

from __future__ import annotations

from nacos_base.errors import UserError

__all__ = ["CostModelError"]


class CostModelError(UserError):
    """Bad input to a cost model (empty or NaN training data, unknown op kind, features that do not
    match a saved model, a model file from another version); the message names what to change."""
