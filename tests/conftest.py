"""Shared fixtures: tiny datasets and configs so that every test runs in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from leo_lightning.data.class_pool import ClassPool

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LEO_PROJECT_ROOT", str(ROOT))


def _share_the_cores_between_workers() -> None:
    """Under pytest-xdist (`make test` runs one worker per core), each worker and every process
    a test starts gets its share of the cores as torch threads. With torch's default, a
    thread per core in every worker, the workers' threads wait on each other's cores (a torch
    step made of small operations stalls whenever one of its threads is descheduled) and the
    suite runs slower in parallel than alone."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ["OMP_NUM_THREADS"] = threads  # the training processes tests start
        torch.set_num_threads(int(threads))


_share_the_cores_between_workers()


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield


def random_pool(n_classes: int = 12, examples: int = 6, size: int = 28, seed: int = 0) -> ClassPool:
    """A pool of random uint8 images whose values encode (class, example) for identity checks."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(
        0, 256, (n_classes, examples, 1, size, size), generator=g, dtype=torch.uint8
    )
    return ClassPool.from_grouped(images)


@pytest.fixture
def pool() -> ClassPool:
    return random_pool()


@pytest.fixture(autouse=True, scope="session")
def _private_precision_cache(tmp_path_factory):
    """`model.backbone_autocast=auto` caches its CPU probe per user; tests (and the training
    subprocesses they start, which inherit the environment) use a cache of their own."""
    os.environ["LEO_CACHE_DIR"] = str(tmp_path_factory.mktemp("leo-cache"))
    yield
