"""LEO's own protocol in miniature, through the commands a user types: leo-pretrain, then
leo-embed, then leo-train on the features; and each stage refusing bad input before any work."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import ROOT
from helpers import TINY_RUN, run_script, tiny_module

from leo_lightning.data.embeddings import EmbeddingSource
from leo_lightning.data.leo_embeddings import LEOEmbeddingSource
from leo_lightning.errors import ConfigError
from leo_lightning.jobs.embed import file_sha256
from leo_lightning.training.pretrainer import pretrained_backbone

pytestmark = pytest.mark.slow

PRETRAIN = [*TINY_RUN, "model.backbone.channels=8", "pretrain.batch_size=32"]
ON_FEATURES = [
    *(o for o in TINY_RUN if not o.startswith("data.source.")),  # the glyphs' own keys
    "data=embeddings",
    "model/backbone=flatten",
    "model.input_shape=[8]",  # the 8-channel Conv4's features on 28 px images
    "model.latent_dim=8",
]


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """One pretraining run and the embeddings of its last checkpoint."""
    root = tmp_path_factory.mktemp("pipeline")
    pretrained = run_script("pretrain.py", root, *PRETRAIN, f"hydra.run.dir={root / 'pre'}")
    assert pretrained.returncode == 0, pretrained.stderr[-3000:]
    ckpt = root / "pre" / "checkpoints" / "last.ckpt"
    embedded = run_script(
        "embed.py", root, f"ckpt_path={ckpt}", f"hydra.run.dir={root / 'emb'}", "leo_layout=glyphs"
    )
    assert embedded.returncode == 0, embedded.stderr[-3000:]
    return root, ckpt, root / "emb" / "embeddings"


def test_pretraining_writes_a_run_with_its_few_shot_validation_score(stages):
    root, ckpt, _ = stages
    results = json.loads((root / "pre" / "results.json").read_text())
    assert results["training_classes"] == 64  # debug=fast's glyphs: 64 training classes
    assert results["steps"] == 20 and 0.2 < results["best_val_acc"] <= 1.0
    assert any((root / "pre").rglob("events.out.tfevents.*"))
    assert ckpt.is_file()


def test_the_embeddings_are_the_backbones_features_of_every_example(stages):
    root, ckpt, embeddings = stages
    from leo_lightning.data.glyphs import GlyphSource

    backbone, _, _ = pretrained_backbone(ckpt)
    glyphs = GlyphSource(
        root=str(root / "data"), train_classes=64, val_classes=16, test_classes=16,
        examples_per_class=6,
    ).load()  # fmt: skip
    pools = EmbeddingSource(str(embeddings)).load()
    for split in ("train", "val", "test"):
        assert pools[split].class_names == glyphs[split].class_names
        with torch.no_grad():
            expected = backbone(glyphs[split].data[:10].float() / 255)
        assert torch.allclose(pools[split].data[:10], expected, atol=1e-5)


def test_the_original_layout_holds_the_same_features_for_data_leo_embeddings(stages):
    _, _, embeddings = stages
    ours = EmbeddingSource(str(embeddings)).load()
    theirs = LEOEmbeddingSource(embeddings / "leo_layout", dataset="glyphs").load()
    for split in ("train", "val", "test"):
        pool, original = ours[split], theirs[split]
        assert original.n_classes == pool.n_classes
        assert torch.equal(original.counts.sort().values, pool.counts.sort().values)
        mine = torch.nn.functional.normalize(pool.data, dim=1)
        assert torch.allclose(original.data.sort(dim=0).values, mine.sort(dim=0).values)


def test_a_run_on_the_features_records_the_checkpoint_they_come_from(stages, tmp_path):
    root, ckpt, embeddings = stages
    run = run_script("train.py", tmp_path, *ON_FEATURES, f"data.source.root={embeddings}")
    assert run.returncode == 0, run.stderr[-3000:]
    (results,) = (tmp_path / "outputs").rglob("results.json")
    record = json.loads(results.read_text())["features"]
    assert record["checkpoint_sha256"] == file_sha256(ckpt)
    assert "embeddings from" in run.stderr + run.stdout  # logged too


def test_features_of_another_width_are_refused_before_training(stages, tmp_path):
    _, _, embeddings = stages
    args = [*ON_FEATURES, f"data.source.root={embeddings}", "model.input_shape=[16]"]
    run = run_script("train.py", tmp_path, *args)
    assert run.returncode == 2
    assert "model.input_shape=[16] does not match the data" in run.stderr


def test_embed_refuses_a_meta_training_checkpoint(tmp_path):
    leo = ROOT / "tests" / "data" / "leo_0.1.0_amortized_tiny.ckpt"  # written by leo-train
    run = run_script("embed.py", tmp_path, f"ckpt_path={leo}")
    assert run.returncode == 2
    assert "not one written by leo-pretrain" in run.stderr
    assert not list((tmp_path / "outputs").rglob("*.pt"))  # nothing written


def test_embed_refuses_a_missing_checkpoint_naming_it(tmp_path):
    run = run_script("embed.py", tmp_path, f"ckpt_path={tmp_path / 'none.ckpt'}")
    assert run.returncode == 2 and "none.ckpt" in run.stderr and "no such file" in run.stderr


def test_embed_refuses_views_without_a_distortion_naming_the_key(stages, tmp_path):
    """The tiny pretraining ran without augmentation: there is nothing to draw views with."""
    _, ckpt, _ = stages
    run = run_script("embed.py", tmp_path, f"ckpt_path={ckpt}", "views=3")
    assert run.returncode == 2
    assert "views=3" in run.stderr and "data/augment=affine" in run.stderr
    assert not list((tmp_path / "outputs").rglob("*.pt"))  # refused before any feature


def test_backbone_init_starts_from_the_pretrained_weights(stages):
    _, ckpt, _ = stages
    module = tiny_module(backbone_init=str(ckpt))
    module.init_backbone(str(ckpt))
    pretrained, _, _ = pretrained_backbone(ckpt)
    for key, value in pretrained.state_dict().items():
        assert torch.equal(module.net.backbone.state_dict()[key], value), key


def test_backbone_init_of_another_architecture_is_refused_naming_the_key(stages):
    _, ckpt, _ = stages
    wider = {"_target_": "leo_lightning.models.Conv4", "in_channels": 1, "channels": 16}
    module = tiny_module(backbone=wider)
    with pytest.raises(
        ConfigError, match=r"model.backbone_init=.*bias has shape \[8\] there, \[16\] here"
    ):
        module.init_backbone(str(ckpt))


def test_a_run_with_backbone_init_of_another_architecture_stops_before_training(stages, tmp_path):
    _, ckpt, _ = stages
    args = [*TINY_RUN, "model.latent_dim=8", "model.backbone.channels=16"]
    run = run_script("train.py", tmp_path, *args, f"model.backbone_init={ckpt}")
    assert run.returncode == 2 and "model.backbone_init=" in run.stderr
    assert not list((tmp_path / "outputs").rglob("*.ckpt"))
