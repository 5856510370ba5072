"""The error type of problems with a dataset the user points us to: a missing root or archive,
an unreadable file, too few classes or examples for the episode shape, a bad source setting.

The scripts recognise it (leo_lightning.cli.errors) and print its message alone, without a
traceback, as they do for config and checkpoint mistakes. It subclasses ValueError, and its
not-found variant FileNotFoundError, so code that caught those before still does.
"""

from __future__ import annotations


class DataError(ValueError):
    """The data given (files, folders or data.* settings) cannot be used; the message says why."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A dataset file or folder the config names does not exist."""
