"""Errors raised by the policies package.

::

    PolicyError          a policy (or a team's override) cannot be used; the message names
                         the key, e.g. ``policies.teams.payments.confidence_threshold``
    OutcomesError        a recorded-outcomes file cannot be read; the message names the line
    CalibrationError     no threshold meets the request (no outcomes, target out of reach)
"""

from __future__ import annotations


class PolicyError(ValueError):
    """A policy setting is invalid; the message names the dotted key and what to do."""


class OutcomesError(ValueError):
    """A recorded-outcomes file is malformed; the message names the file and line."""


class CalibrationError(ValueError):
    """No threshold can be calibrated: no outcomes, a bad target, or one out of reach."""
