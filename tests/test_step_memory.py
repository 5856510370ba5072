"""A configuration whose step cannot fit in the memory there is, is refused before any work,
naming the keys that drive it; a step that fits is never held back."""

from __future__ import annotations

import platform

import pytest
from helpers import TINY_RUN

import leo_lightning as ll
from leo_lightning.training import memory


def overrides(tmp_path, *extra):
    return [
        *TINY_RUN,
        f"paths.output_dir={tmp_path}/outputs",
        f"paths.data_dir={tmp_path}/data",
        *extra,
    ]


def test_maml_with_a_thousand_steps_through_the_backbone_is_refused_naming_the_steps(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 8 * 2**30)
    with pytest.raises(ll.ConfigError, match=r"about 4\d\.\d GiB.*lower strategy.sgd_steps=1000"):
        ll.train(overrides(tmp_path, "strategy=maml", "strategy.sgd_steps=1000"))
    assert not (tmp_path / "data").exists()  # refused before the data was prepared


def test_leo_s_estimate_names_the_meta_batch_not_its_latent_steps(tmp_path, monkeypatch):
    """LEO's latent steps reuse one backbone pass: the meta-batch drives its memory."""
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2**20)
    with pytest.raises(ll.ConfigError, match="lower data.meta_batch_size") as error:
        ll.train(overrides(tmp_path))
    assert "model.inner_steps" not in str(error.value)


def test_the_estimate_grows_with_the_steps_only_where_they_run_the_backbone():
    leo, maml = ll.LEO([]), ll.LEO(["strategy=maml"])
    shape = (5, 1, 15, 4)
    assert (
        memory.estimated_step_bytes(maml.module, *shape)["bytes"]
        > memory.estimated_step_bytes(leo.module, *shape)["bytes"]
    )
    deeper = ll.LEO(["model.inner_steps=20"])
    assert memory.estimated_step_bytes(deeper.module, *shape) == memory.estimated_step_bytes(
        leo.module, *shape
    )


@pytest.mark.skipif(platform.system() != "Linux", reason="MemAvailable is Linux's")
def test_the_memory_available_on_the_cpu_is_read():
    import torch

    assert memory.available_bytes(torch.device("cpu")) > 2**20
