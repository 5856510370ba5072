"""The allocator is set once per process at every entry point, recorded, and harmless where it
cannot be set."""

from __future__ import annotations

import ctypes
import platform

import pytest

from leo_lightning.training import allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """Each test configures as a new process would (the record is once per process)."""
    monkeypatch.setattr(allocator, "_record", None)
    monkeypatch.delenv(allocator.ENV, raising=False)


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_on_glibc_both_thresholds_are_set_and_recorded():
    record = allocator.configure_allocator()
    assert record == {
        "name": "glibc mallopt",
        "applied": True,
        "trim_threshold": allocator.TRIM_THRESHOLD,
        "mmap_threshold": allocator.MMAP_THRESHOLD,
    }
    assert allocator.allocator_record() is record
    assert allocator.configure_allocator() is record  # once per process


def test_without_glibc_nothing_is_changed_and_the_record_says_why(monkeypatch):
    def no_libc(*args, **kwargs):
        raise OSError("no such library")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    record = allocator.configure_allocator()
    assert record["applied"] is False and "no glibc mallopt" in record["reason"]


def test_leo_allocator_default_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setenv(allocator.ENV, "default")
    assert allocator.configure_allocator()["reason"] == "LEO_ALLOCATOR=default"


def test_a_threshold_glibc_refuses_is_recorded_as_not_applied(monkeypatch):
    monkeypatch.setattr(allocator, "_mallopt", lambda: lambda param, value: 0)
    assert allocator.configure_allocator()["applied"] is False
