"""TensorBoard dashboards: the validation episode picture and the latent-norm histograms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import quiet_trainer, random_image_datamodule, run_script, tiny_module

from leo_lightning.training import dashboards
from leo_lightning.training.dashboards import GREEN, NEUTRAL, RED


def task(n: int, k: int, q: int, channels: int, size: int, seed: int = 0):
    """One task (no batch dimension) and predictions that are wrong for every third query."""
    g = torch.Generator().manual_seed(seed)
    if channels == 1:  # uint8 images, as the data module delivers them
        images = lambda m: torch.randint(0, 256, (m, 1, size, size), generator=g, dtype=torch.uint8)  # noqa: E731
    else:  # normalised float images
        images = lambda m: torch.randn(m, channels, size, size, generator=g)  # noqa: E731
    support_y = torch.randperm(n, generator=g).repeat_interleave(k)
    query_y = torch.randperm(n, generator=g).repeat(q)
    predicted = query_y.clone()
    predicted[::3] = (query_y[::3] + 1) % n
    return images(n * k), support_y, images(n * q), query_y, predicted


@pytest.mark.parametrize(
    ("n", "k", "q", "channels", "size", "shown"),
    [(5, 1, 3, 1, 28, 3), (3, 2, 10, 3, 84, 8)],  # 10 queries per class: capped at 8
    ids=["5-way-1-shot-28px-gray", "3-way-2-shot-84px-rgb"],
)
def test_episode_grid_has_a_row_per_class_support_first_then_framed_queries(
    n, k, q, channels, size, shown
):
    support_x, support_y, query_x, query_y, predicted = task(n, k, q, channels, size)
    canvas, panels = dashboards.episode_canvas(support_x, support_y, query_x, query_y, predicted)

    supports = [p for p in panels if p.kind == "support"]
    queries = [p for p in panels if p.kind == "query"]
    assert len(supports) == n * k and len(queries) == n * shown
    for row in range(n):
        row_support = [p for p in supports if p.row == row]
        row_query = [p for p in queries if p.row == row]
        assert sorted(p.column for p in row_support) == list(range(k))
        assert sorted(p.column for p in row_query) == list(range(k, k + shown))
        assert all(p.label == row for p in row_support + row_query)  # each row is one class
        assert len({p.top for p in row_support + row_query}) == 1  # on one line
        # A wider gap separates the support block from the queries than queries from each other.
        row_query.sort(key=lambda p: p.left)
        gap = row_query[0].left - max(p.left + p.width for p in row_support)
        assert gap > row_query[1].left - (row_query[0].left + row_query[0].width) > 0
    assert len({p.top for p in panels}) == n
    assert canvas.shape[0] > n * size and canvas.shape[2] == 3
    assert canvas.shape[1] > (k + shown) * size

    # Frames: grey for support, green where the prediction is right, red where it is wrong.
    for p in panels:
        expected = NEUTRAL if p.kind == "support" else GREEN if p.correct else RED
        assert np.allclose(canvas[p.top, p.left], expected)
        assert np.allclose(canvas[p.top + p.height - 1, p.left + p.width - 1], expected)
    assert any(p.correct for p in queries) and not all(p.correct for p in queries)
    for p in queries:
        assert p.caption == f"p{p.predicted} t{p.label}"

    # The figure: one axes holding the grid, a caption per query in the frame's colour.
    fig = dashboards.episode_figure(support_x, support_y, query_x, query_y, predicted, title="t")
    (ax,) = fig.axes
    captions = [t for t in ax.texts if t.get_text().startswith("p")]
    assert sorted(t.get_text() for t in captions) == sorted(p.caption for p in queries)
    for text in captions:
        predicted_label, true_label = text.get_text()[1:].split(" t")
        assert np.allclose(text.get_color(), GREEN if predicted_label == true_label else RED)
    image = dashboards.render(fig)
    width, height = fig.get_size_inches() * fig.dpi
    assert image.shape[2] == 3 and image.dtype == np.uint8
    # The figure's size in pixels; matplotlib releases round a fractional pixel differently.
    assert abs(image.shape[0] - height) < 1 and abs(image.shape[1] - width) < 1


def test_the_episode_figure_names_each_row_by_its_class():
    support_x, support_y, query_x, query_y, predicted = task(3, 1, 2, 1, 28)
    names = ["alpha", "beta", "gamma"]
    fig = dashboards.episode_figure(
        support_x, support_y, query_x, query_y, predicted, class_names=names
    )
    (ax,) = fig.axes
    assert sorted(t.get_text() for t in ax.get_yticklabels()) == names


def test_too_few_class_names_are_refused():
    support_x, support_y, query_x, query_y, predicted = task(3, 1, 2, 1, 28)
    with pytest.raises(ValueError, match="class_names has 2 names for an episode of 3 classes"):
        dashboards.episode_figure(
            support_x, support_y, query_x, query_y, predicted, class_names=["a", "b"]
        )


def test_the_episode_figure_shows_itself_as_png_in_a_notebook():
    """Jupyter displays an object by its _repr_png_; a plain matplotlib Figure has none until
    pyplot is imported, and printed as <Figure size ...> in a fresh kernel."""
    fig = dashboards.episode_figure(*task(3, 1, 2, 1, 28))
    assert fig._repr_png_().startswith(b"\x89PNG")


def test_images_are_rescaled_per_image_for_display():
    images = torch.stack([torch.full((1, 4, 4), -3.0), torch.arange(16.0).view(1, 4, 4) * 7])
    shown = dashboards.to_display(images)
    assert shown.shape == (2, 4, 4, 3)
    assert (shown[0] == 0).all()  # a constant image: black, not a division by zero
    assert shown[1].min() == 0 and shown[1].max() == 1
    assert dashboards.drawable((1, 28, 28)) and dashboards.drawable((3, 84, 84))
    assert not dashboards.drawable((640,))


def test_episode_title_counts_every_query_and_says_when_some_are_not_shown():
    _, support_y, _, query_y, predicted = task(3, 2, 10, 1, 28)
    title = dashboards.episode_title("val", support_y, query_y, predicted)
    assert title == "val\n3-way 2-shot: 20/30 queries correct (8 per class shown)"


def events(log_dir):
    """The event file holding the images (a run may write others, e.g. for its hparams)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with_images = []
    for path in log_dir.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(path), size_guidance={"images": 0, "histograms": 0})
        accumulator.Reload()
        if accumulator.Tags()["images"]:
            with_images.append(accumulator)
    (accumulator,) = with_images
    return accumulator


@pytest.mark.slow
def test_validation_writes_the_episode_image_and_latent_norm_histograms(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    logger = TensorBoardLogger(tmp_path, name="tb", version=0)
    # Validation after each of 2 steps, and a sanity check that must not write dashboards.
    trainer = quiet_trainer(
        max_steps=2, val_check_interval=1, num_sanity_val_steps=1, logger=logger
    )
    trainer.fit(tiny_module(), datamodule=random_image_datamodule())
    logger.experiment.flush()

    accumulator = events(tmp_path)
    assert [e.step for e in accumulator.Images("val/episode")] == [1, 2]
    image = accumulator.Images("val/episode")[-1]
    assert image.width > 300 and image.height > 300
    for tag in ("latents/norm_initial", "latents/norm_adapted"):
        histograms = accumulator.Histograms(tag)
        assert [h.step for h in histograms] == [1, 2]
        assert histograms[-1].histogram_value.num == 4 * 5  # 4 validation episodes, 5 codes each
        assert histograms[-1].histogram_value.min > 0


@pytest.mark.slow
def test_per_task_validation_draws_the_episode_and_norms_from_zero(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    module = tiny_module(strategy={"_target_": "leo_lightning.strategies.PerTask"}, inner_steps=3)
    logger = TensorBoardLogger(tmp_path, name="tb", version=0)
    quiet_trainer(logger=logger).validate(module, datamodule=random_image_datamodule())
    logger.experiment.flush()

    accumulator = events(tmp_path)
    assert len(accumulator.Images("val/episode")) == 1
    initial = accumulator.Histograms("latents/norm_initial")[0].histogram_value
    adapted = accumulator.Histograms("latents/norm_adapted")[0].histogram_value
    assert initial.num == adapted.num == 20
    assert initial.max == 0 and adapted.max > 0  # q(z) starts at N(0, I) and moves


@pytest.mark.slow
def test_ddp_rank_zero_draws_the_dashboards_and_no_rank_waits(tmp_path):
    proc = run_script(
        "train.py",
        tmp_path,
        "debug=fast",
        "trainer=ddp_sim",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "test=false",
        "model.latent_dim=8",
        "model.backbone.channels=8",
        "data.val_episodes=4",
        "data.source.examples_per_class=6",
        "data.n_query=3",
        "~callbacks.progress_bar",
        "trainer.enable_progress_bar=false",
        timeout=120,  # a rank stuck in a collective would hang until here
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    accumulator = events(tmp_path / "outputs")
    assert [e.step for e in accumulator.Images("val/episode")] == [2]
    # Rank 0's share of the 4 validation episodes: 2 episodes, 5 class codes each.
    assert accumulator.Histograms("latents/norm_adapted")[0].histogram_value.num == 2 * 5


@pytest.mark.slow
def test_validation_of_a_diverged_model_draws_no_histogram_of_non_finite_norms(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    module = tiny_module()
    with torch.no_grad():  # a diverged model: every latent-code norm is NaN
        module.strategy.encoder.linear.weight.fill_(float("nan"))
    logger = TensorBoardLogger(tmp_path, name="tb", version=0)
    quiet_trainer(logger=logger).validate(module, datamodule=random_image_datamodule())
    logger.experiment.flush()

    accumulator = events(tmp_path)  # the validation finished and drew its episode
    assert len(accumulator.Images("val/episode")) == 1
    assert "latents/norm_initial" not in accumulator.Tags()["histograms"]


def test_histograms_leave_out_the_non_finite_values():
    class Writer:
        def add_histogram(self, tag, values, step):
            self.drawn = (tag, values.tolist(), step)

    from leo_lightning.training.module import add_finite_histogram

    writer = Writer()
    nan, inf = float("nan"), float("inf")
    add_finite_histogram(writer, "latents/norm_initial", torch.tensor([1.0, nan, inf, 2.0]), 7)
    assert writer.drawn == ("latents/norm_initial", [1.0, 2.0], 7)


@pytest.mark.parametrize("values", [[3e38, -3e38], [1e30, 1e30]], ids=["range", "constant"])
def test_a_histogram_of_huge_finite_values_is_skipped_not_fatal(tmp_path, caplog, values):
    """model.finetune_lr=1e30 is finite and accepted; its first validation used to stop the run
    in TensorBoard's binning ("The histogram is empty")."""
    from torch.utils.tensorboard import SummaryWriter

    from leo_lightning.training.module import add_finite_histogram

    with SummaryWriter(str(tmp_path)) as writer:
        add_finite_histogram(writer, "latents/norm_adapted", torch.tensor(values), 3)
    assert "latents/norm_adapted at step 3: not drawn" in caplog.text
