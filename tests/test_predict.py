"""scripts/predict.py on generated folders: any N, any K, clear errors."""

from __future__ import annotations

import csv

import pytest
from helpers import quiet_trainer, random_image_datamodule, run_script, tiny_module
from PIL import Image

from leo_lightning.data.glyphs import render_glyphs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A 5-way model, trained for two steps (the mechanics matter here, not the accuracy)."""
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    module = tiny_module()
    module.run_config = {"data": {"n_way": 5}}
    trainer = quiet_trainer(max_steps=2, limit_val_batches=0)
    trainer.fit(module, datamodule=random_image_datamodule())
    trainer.save_checkpoint(path)
    return path


def write_folders(root, n_way, shots, queries=3):
    """Glyphs saved as black-on-white PNGs, as a user would have them."""
    images = 255 - render_glyphs(n_way, shots + queries, 28, seed=5)  # [N, E, 1, 28, 28]
    for c in range(n_way):
        (root / "support" / f"class_{c}").mkdir(parents=True)
        for e in range(shots):
            Image.fromarray(images[c, e, 0].numpy()).save(
                root / "support" / f"class_{c}" / f"{e}.png"
            )
    (root / "query").mkdir()
    for c in range(n_way):
        for e in range(shots, shots + queries):
            Image.fromarray(images[c, e, 0].numpy()).save(root / "query" / f"c{c}_{e}.png")


def predict(tmp_path, checkpoint, *overrides):
    folders = [f"support_dir={tmp_path / 'support'}", f"query_dir={tmp_path / 'query'}"]
    return run_script("predict.py", tmp_path, f"ckpt_path={checkpoint}", *folders, *overrides)


def read_predictions(tmp_path):
    (path,) = (tmp_path / "outputs").rglob("predictions.csv")
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(("n_way", "shots"), [(5, 1), (20, 1), (5, 3)])
def test_a_5_way_model_classifies_any_number_of_classes_and_shots(
    tmp_path, checkpoint, n_way, shots
):
    write_folders(tmp_path, n_way, shots)
    proc = predict(tmp_path, checkpoint)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_predictions(tmp_path)
    assert len(rows) == 3 * n_way
    assert all(row["predicted"].startswith("class_") for row in rows)
    probabilities = [float(v) for k, v in rows[0].items() if k.startswith("p(")]
    assert len(probabilities) == n_way and abs(sum(probabilities) - 1) < 1e-3
    assert f"{n_way}-way, {shots}-shot support" in proc.stdout


def test_class_folder_without_images_is_named(tmp_path, checkpoint):
    write_folders(tmp_path, 5, 1)
    (tmp_path / "support" / "empty_class").mkdir()
    proc = predict(tmp_path, checkpoint)
    assert proc.returncode != 0 and "empty_class holds no images" in proc.stderr


def test_undecodable_image_is_named(tmp_path, checkpoint):
    write_folders(tmp_path, 5, 1)
    (tmp_path / "query" / "broken.png").write_bytes(b"not a png")
    proc = predict(tmp_path, checkpoint)
    assert proc.returncode != 0 and "broken.png" in proc.stderr


def test_a_query_folder_with_class_subfolders_is_scored_against_them(tmp_path, checkpoint):
    write_folders(tmp_path, 3, 1)
    for path in list((tmp_path / "query").glob("c*_*.png")):  # c<class>_<e>.png -> class_<c>/
        label = f"class_{path.name[1]}"
        (tmp_path / "query" / label).mkdir(exist_ok=True)
        path.rename(tmp_path / "query" / label / path.name)
    proc = predict(tmp_path, checkpoint)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_predictions(tmp_path)
    assert len(rows) == 9 and {r["true"] for r in rows} == {"class_0", "class_1", "class_2"}
    assert rows[0]["file"] == "class_0/c0_1.png"
    assert "accuracy on the 9 labelled queries:" in proc.stdout


def test_a_query_class_that_the_support_lacks_is_named(tmp_path, checkpoint):
    write_folders(tmp_path, 3, 1)
    (tmp_path / "query" / "class_9").mkdir()
    (tmp_path / "query" / "c0_1.png").rename(tmp_path / "query" / "class_9" / "x.png")
    proc = predict(tmp_path, checkpoint)
    assert proc.returncode == 2 and "'class_9' are not classes of support_dir" in proc.stderr


def test_missing_query_folder_is_named(tmp_path, checkpoint):
    write_folders(tmp_path, 5, 1)
    proc = predict(tmp_path, checkpoint, f"query_dir={tmp_path / 'nowhere'}")
    assert proc.returncode != 0 and "nowhere" in proc.stderr and "not a directory" in proc.stderr


def test_a_file_that_is_not_our_checkpoint_is_rejected(tmp_path):
    write_folders(tmp_path, 5, 1)
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_text("hello")
    proc = predict(tmp_path, bogus)
    assert proc.returncode != 0 and "is a text file (it starts with 'hello')" in proc.stderr


def test_names_that_are_formulas_or_hold_control_characters_are_neutralised(tmp_path, checkpoint):
    """Class folders and query files are the user's (or a downloaded archive's): a spreadsheet
    must not evaluate them, and the terminal must not receive their escape sequences."""
    write_folders(tmp_path, 3, 1)
    support, query = tmp_path / "support", tmp_path / "query"
    (support / "class_0").rename(support / '=HYPERLINK("x","y")')
    (support / "class_1").rename(support / "@SUM(1+1)")
    (support / "class_2").rename(support / "red\x1b[31mink")
    next(query.iterdir()).rename(query / "=1+2.png")
    proc = predict(tmp_path, checkpoint)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = (tmp_path / "outputs").rglob("predictions.csv")
    with path.open() as handle:
        lines = list(csv.reader(handle))
    cells = [cell for line in lines for cell in line]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert "'=1+2.png" in cells and not any("\x1b" in c for c in cells)
    assert {line[1] for line in lines[1:]} <= {
        '\'=HYPERLINK("x","y")',
        "'@SUM(1+1)",
        "red\\x1b[31mink",
    }
    assert "\x1b" not in proc.stdout and "=1+2.png" in proc.stdout
