"""A run's TensorBoard name is what it was started with, and a run keeps its first name."""

from __future__ import annotations

from leo_lightning.config.run_label import MAX_LENGTH, NO_OVERRIDES, label_of, run_label


def test_the_label_lists_the_overrides_in_the_order_given():
    label = label_of(["strategy=maml", "model.latent_dim=128"])
    assert label == "strategy=maml,model.latent_dim=128"


def test_how_a_run_starts_is_not_part_of_its_label():
    assert label_of(["ckpt_path=/a/last.ckpt", "overwrite=true", "seed=3"]) == "seed=3"


def test_a_run_without_overrides_is_labelled_defaults():
    assert label_of([]) == label_of(["ckpt_path=last"]) == NO_OVERRIDES


def test_a_label_is_one_folder_name_without_shell_hazards():
    label = label_of(["model/backbone=resnet12", "data.source.root=/data/my images", "x='a;b'"])
    assert "/" not in label and " " not in label and ";" not in label and "'" not in label
    assert label.startswith("model.backbone=resnet12,data.source.root=_data_my_images,x=_a_b_")


def test_a_long_label_is_cut_and_told_apart_by_a_hash():
    many = [f"model.key_{i}={i}" for i in range(40)]
    label, other = label_of(many), label_of([*many[:-1], "model.key_39=40"])
    assert len(label) == len(other) == MAX_LENGTH and label != other


def test_outside_a_hydra_job_a_new_run_is_labelled_defaults(tmp_path):
    assert run_label(str(tmp_path)) == NO_OVERRIDES


def test_a_started_run_keeps_its_label_whatever_the_resuming_command_says(tmp_path):
    (tmp_path / "tensorboard" / "strategy=maml").mkdir(parents=True)
    assert run_label(str(tmp_path)) == "strategy=maml"


def test_a_run_from_before_labels_goes_on_writing_where_its_events_are(tmp_path):
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    assert run_label(str(tmp_path)) == ""
