"""The mistakes a user can make, one type each, in one place (and a run that its settings made
diverge).

A command prints such an error's message alone, without a traceback, and exits with 2
(jobs/user_errors.py); from Python it is raised as it is (`leo_lightning.ConfigError`, ...).
Anything else that goes wrong is a bug and keeps its traceback. Each subclasses ValueError (and
the not-found one FileNotFoundError), so code that caught those before still does.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """The composed config breaks one or more rules; the message lists every problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid config:\n" + "\n".join(f"  - {p}" for p in problems))


class CheckpointError(ValueError):
    """The checkpoint is missing, unreadable, not this project's, or built for another model."""


class DataError(ValueError):
    """The data given (files, folders or data.* settings) cannot be used; the message says why."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A dataset file or folder the config names does not exist."""


class TrainingDiverged(FloatingPointError):
    """Training stopped because its updates or weights became non-finite (too large a rate, as a
    rule); the message says what was saved and what to change."""
