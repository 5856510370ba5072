"""What a training run records for the comparison: one step's peak memory and its HParams."""

from __future__ import annotations

import pytest
from helpers import quiet_trainer, random_image_datamodule, tiny_module
from test_config import compose_train

from leo_lightning.jobs.train import hparams, swept_keys
from leo_lightning.training.hparams_tab import shown_as_written
from leo_lightning.training.memory import CPU_SOURCE, PeakStepMemory


@pytest.mark.slow
def test_the_peak_memory_of_one_cpu_training_step_is_measured_once():
    memory = PeakStepMemory()
    trainer = quiet_trainer(max_steps=3, limit_val_batches=0, callbacks=[memory])
    trainer.fit(tiny_module(), datamodule=random_image_datamodule())
    record = memory.record()
    assert record["peak_step_memory_source"] == CPU_SOURCE
    assert 0.01 < record["peak_step_memory_mb"] < 1000


def test_without_a_second_step_nothing_is_recorded():
    assert PeakStepMemory().record() == {
        "peak_step_memory_mb": None,
        "peak_step_memory_source": None,
    }


def test_hparams_hold_every_overridden_key_and_the_fixed_ones():
    overrides = ["strategy=maml", "model.backbone.channels=8", "~callbacks.progress_bar"]
    overrides += ["strategy.sgd_lr=0.1", "hydra.job.chdir=false"]
    params = hparams(compose_train(*overrides[:-1]), overrides)
    assert params["strategy"] == "maml" and params["strategy._target_"] == "MAML"
    assert params["model.backbone.channels"] == 8 and params["strategy.sgd_lr"] == 0.1
    assert params["model.latent_dim"] == 64  # a fixed key, not overridden
    assert not any(key.startswith(("hydra", "~", "callbacks")) for key in params)


def test_hparams_put_the_overridden_keys_first_in_the_order_given():
    """TensorBoard's HParams columns follow this order: what a sweep varied comes first."""
    overrides = ["model.latent_dim=32", "strategy=maml", "seed=3"]
    params = hparams(compose_train(*overrides), overrides)
    assert list(params)[:4] == ["model.latent_dim", "strategy", "seed", "strategy._target_"]
    assert params["model.latent_dim"] == 32 and params["seed"] == 3  # the values given


def test_hparams_show_the_schedule_and_the_augmentation_an_experiment_sets():
    """experiment=omniglot_minimal sets them in its file, not on the command line."""
    params = hparams(compose_train("experiment=omniglot_minimal"), ["experiment=omniglot_minimal"])
    assert params["model.lr_schedule"] == "cosine" and params["model.warmup_steps"] >= 0
    assert params["data.augment._target_"] == "RandomAffine"
    plain = hparams(compose_train(), [])
    assert plain["model.lr_schedule"] == "constant"
    assert plain["data.augment._target_"] == "no_augmentation"


def test_integers_and_booleans_are_shown_as_written_and_floats_stay_numbers():
    """TensorBoard prints a number to five digits (128 as 128.00); torch logs a bool as 1.0."""
    shown = shown_as_written({"model.latent_dim": 128, "data.trainval": True, "model.lr": 1e-3})
    assert shown == {"model.latent_dim": "128", "data.trainval": "true", "model.lr": 1e-3}


def test_a_deleted_key_is_not_shown_as_a_setting():
    params = hparams(compose_train("~callbacks.progress_bar"), ["~callbacks.progress_bar=null"])
    assert not any(key.startswith(("~", "callbacks")) for key in params)


def test_a_multirun_job_s_swept_keys_are_those_its_sweep_did_not_fix():
    job = ["model.latent_dim=16", "debug=fast", "seed=3", "ckpt_path=last", "~callbacks.x"]
    sweep = ["model.latent_dim=8,16", "debug=fast", "seed=3"]
    assert swept_keys(job, sweep) == {"model.latent_dim"}


def test_a_fixed_value_spelled_otherwise_by_the_job_is_not_swept():
    """Hydra writes a multirun job's `false` as `False`: the same value."""
    job = ["model.latent_dim=16", "trainer.enable_progress_bar=False"]
    sweep = ["model.latent_dim=8,16", "trainer.enable_progress_bar=false"]
    assert swept_keys(job, sweep) == {"model.latent_dim"}


def test_an_optuna_trial_s_sampled_keys_are_swept():
    """The sampled values are not on the sweep's command line at all."""
    assert swept_keys(["model.lr=0.003", "debug=fast"], ["debug=fast"]) == {"model.lr"}


def test_a_single_run_s_swept_keys_are_the_ones_it_sets():
    assert swept_keys(["model.latent_dim=16", "overwrite=true"], None) == {"model.latent_dim"}
