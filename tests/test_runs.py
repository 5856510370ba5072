"""leo_lightning.train / evaluate: the commands' runs from plain Python, and fresh models."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT
from helpers import TINY_CONV4, TINY_RUN
from hydra import initialize_config_dir

import leo_lightning as ll
from leo_lightning.errors import CheckpointError, ConfigError

MY_EXPERIMENT = "# @package _global_\nmodel:\n  latent_dim: 4\n"


def paths(root: Path) -> list[str]:
    return [f"paths.output_dir={root}/outputs", f"paths.data_dir={root}/data"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny ll.train run; the root logger's handlers before and after it."""
    root = tmp_path_factory.mktemp("runs")
    handlers = list(logging.getLogger().handlers)
    results = ll.train([*TINY_RUN, *TINY_CONV4, *paths(root)])
    return root, results, handlers, list(logging.getLogger().handlers)


@pytest.mark.slow
def test_train_returns_what_it_writes_to_results_json(run):
    _, results, _, _ = run
    written = json.loads((Path(results["run_dir"]) / "results.json").read_text())
    assert written == json.loads(json.dumps(results))
    assert results["meta_train_steps"] == 20 and 0 <= results["test/acc"] <= 1


@pytest.mark.slow
def test_train_writes_the_run_folder_as_the_command_does(run):
    root, results, _, _ = run
    run_dir = Path(results["run_dir"])
    assert run_dir.is_relative_to(root / "outputs" / "runs")
    for name in (".hydra/config.yaml", ".hydra/overrides.yaml", "train.log", "checkpoints"):
        assert (run_dir / name).exists(), name
    assert "debug=fast" in yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    assert "test/acc" in (run_dir / "train.log").read_text()  # the job's log, as the command's
    assert Path(results["best_ckpt"]).is_relative_to(run_dir / "checkpoints")


@pytest.mark.slow
def test_a_run_gives_the_callers_logging_back(run):
    _, _, before, after = run
    assert after == before


@pytest.mark.slow
def test_evaluate_scores_the_checkpoint_on_the_same_test_episodes(run, tmp_path):
    _, trained, _, _ = run
    results = ll.evaluate(trained["best_ckpt"], paths(tmp_path))
    assert results["test/acc"] == pytest.approx(trained["test/acc"])
    assert results["test/episodes"] == trained["test/episodes"]
    assert list((tmp_path / "outputs").glob("evals/*/*/results.json"))  # apart from the runs


def test_a_bad_value_raises_config_error_before_any_folder_exists(tmp_path):
    with pytest.raises(ConfigError, match=r"model.latent_dim=0: must be >= 1"):
        ll.train(["model.latent_dim=0", *paths(tmp_path)])
    assert not (tmp_path / "outputs").exists()


def test_a_mistyped_key_raises_config_error_naming_the_real_one(tmp_path):
    with pytest.raises(
        ConfigError, match=r"model.latnet_dim: no such key; did you mean model.latent_dim"
    ):
        ll.train(["model.latnet_dim=3", *paths(tmp_path)])
    assert not (tmp_path / "outputs").exists()


def test_the_errors_a_user_can_make_are_importable_from_the_package():
    assert issubclass(ll.ConfigError, ValueError) and issubclass(ll.CheckpointError, ValueError)
    assert issubclass(ll.DataNotFoundError, ll.DataError) and issubclass(ll.DataError, ValueError)


@pytest.mark.slow
def test_a_run_that_diverges_ends_with_one_message_and_exit_2(tmp_path):
    """model.lr=1e308 is finite and accepted; its first Adam step overflows the weights."""
    from helpers import TINY_CONV4, TINY_RUN, run_script

    proc = run_script("train.py", tmp_path, *TINY_RUN, *TINY_CONV4, "model.lr=1e308")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "made the weights non-finite" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_missing_checkpoint_raises_checkpoint_error_and_leaves_no_folder(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.ckpt"):
        ll.evaluate(tmp_path / "nowhere.ckpt", paths(tmp_path))
    assert not list((tmp_path / "outputs").rglob("*.log"))


def test_a_non_empty_run_folder_is_refused_as_by_the_command(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "something").write_text("x")
    with pytest.raises(ConfigError, match="already holds"):
        ll.train([*paths(tmp_path), f"hydra.run.dir={tmp_path / 'taken'}"])


def test_inside_a_hydra_app_it_says_why_it_cannot_run():
    app = initialize_config_dir(str(ROOT / "conf"), version_base="1.3")
    with app, pytest.raises(RuntimeError, match="inside a Hydra app"):
        ll.train(["debug=fast"])


def test_a_config_dir_of_ones_own_adds_its_options(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text(MY_EXPERIMENT)
    leo = ll.LEO(["model.backbone.channels=8", "experiment=mine"], config_dir=tmp_path)
    assert leo.net.latent_dim == 4


def test_a_missing_config_dir_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ll.LEO(TINY_CONV4, config_dir=tmp_path / "nowhere")


def test_a_fresh_model_is_initialised_from_the_configs_seed():
    def weights(seed):
        return ll.LEO([*TINY_CONV4, f"seed={seed}"]).net.decoder.linear.weight

    assert weights(1).equal(weights(1)) and not weights(1).equal(weights(2))


def test_a_strategy_without_latent_codes_says_so():
    leo = ll.LEO([*TINY_CONV4, "strategy=per_task"])
    with pytest.raises(TypeError, match="PerTask has no latent codes"):
        leo.encode_task(*[t[0] for t in _random_task()])


def _random_task():
    from helpers import random_episode

    episode = random_episode(b=1)
    return episode.support_x, episode.support_y


def _episode():
    """Two 5-way 1-shot tasks of random 28 px images, 3 queries per class."""
    from helpers import random_episode

    return random_episode(b=2)


def _first_task():
    episode = _episode()
    return episode.support_x[0], episode.support_y[0], episode.query_x[0]


@pytest.mark.parametrize("strategy", ["maml", "protonet"])
def test_the_classifier_of_a_strategy_without_a_decoded_classifier_is_refused(strategy):
    leo = ll.LEO([*TINY_CONV4, f"strategy={strategy}"])
    support_x, _, query_x = _first_task()
    with pytest.raises(TypeError, match="leo.logits"):
        leo.classifier(query_x, {"fc.weight": torch.zeros(5, 8)})


@pytest.mark.parametrize(
    "overrides",
    [["strategy=maml"], ["strategy=protonet"], ["strategy.batch_norm=batch"], []],
    ids=["maml", "protonet", "amortized-transductive", "amortized"],
)
def test_logits_are_what_the_module_computes_at_evaluation(overrides):
    leo = ll.LEO([*TINY_CONV4, *overrides])
    episode = _episode()
    expected = leo.module.eval()(episode).query_logits
    got = leo.logits(episode.support_x, episode.support_y, episode.query_x)
    torch.testing.assert_close(got, expected)
    one = leo.logits(*_first_task())
    assert one.shape == expected.shape[1:]


def test_the_step_by_step_api_refuses_transductive_batch_norm_saying_why():
    """With strategy.batch_norm=batch the features of the support depend on the queries: the
    steps used to compute them from the support alone, up to 0.59 away from leo-eval."""
    leo = ll.LEO([*TINY_CONV4, "strategy.batch_norm=batch"])
    support_x, support_y, _ = _first_task()
    with pytest.raises(ValueError, match="batch_norm=batch.*leo.logits"):
        leo.encode_task(support_x, support_y)


def test_meta_train_step_flushes_subnormals_as_a_training_step_does(monkeypatch):
    leo = ll.LEO(TINY_CONV4)
    flushing, seen = [False], []
    set_flush = torch.set_flush_denormal
    update = leo.module.meta_update

    def recording_flush(mode):
        flushing[0] = mode
        return set_flush(mode)

    def recording_update(*args, **kwargs):
        seen.append(flushing[0])
        return update(*args, **kwargs)

    monkeypatch.setattr(torch, "set_flush_denormal", recording_flush)
    monkeypatch.setattr(leo.module, "meta_update", recording_update)
    episode = _episode()
    leo.meta_train_step(episode.support_x, episode.support_y, episode.query_x, episode.query_y)
    assert seen == [True] and flushing[0] is False  # on for the step, the default after it


def test_evaluating_on_images_of_another_size_is_refused_naming_the_key(tmp_path):
    from pathlib import Path

    checkpoint = Path(__file__).parent / "data" / "leo_0.1.0_amortized_tiny.ckpt"
    with pytest.raises(ConfigError, match=r"data.image_size=56 data.channels=1: .*\[1, 28, 28\]"):
        ll.evaluate(checkpoint, ["data.image_size=56", *paths(tmp_path)])
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.json"))
