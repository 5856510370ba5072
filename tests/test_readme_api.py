"""README.md's "Python API" section, run as written in a fresh Python process (no Hydra app,
an empty directory, nothing set in the environment), so its example cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of the README section headed `## <section>`."""
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, f"README.md has no '## {section}' section"
    return re.findall(r"^```python\n(.*?)^```", match.group(1), re.S | re.M)


# Between the two blocks, as a user would: a task of one's own images in my_task/, here the
# glyphs of the second test episode saved as PNG files.
MAKE_MY_TASK = textwrap.dedent(
    """
    from pathlib import Path
    from PIL import Image

    task = next(iter(leo.datamodule().test_dataloader()))
    for part, images, labels in (("support", task.support_x[1], task.support_y[1]),
                                 ("query", task.query_x[1][:10], task.query_y[1][:10])):
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = Path("my_task", part, f"glyph{int(label)}")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[0].numpy()).save(folder / f"{i}.png")
    """
)

CHECK_EXAMPLE = textwrap.dedent(
    """
    import math
    assert codes.shape == adapted.shape == (5, 8), (codes.shape, adapted.shape)
    assert not torch.equal(codes, adapted), "the latent steps left the codes as they were"
    assert list(params) == ["fc.weight"] and params["fc.weight"].shape == (5, 8)
    assert logits.shape == (75, 5)
    assert math.isfinite(loss)
    """
)

CHECK_WALKTHROUGH = textwrap.dedent(
    """
    assert support_x.shape == (5, 1, 28, 28) and support_x.dtype == torch.uint8
    assert predicted.shape == query_y.shape == (10,)
    assert Path("my_task.png").stat().st_size > 0
    print("README OK")
    """
)


def test_readme_python_api_runs_as_written_in_a_fresh_process(tmp_path):
    example, walkthrough = python_blocks("Python API")
    program = "\n".join(
        [example, "import torch", CHECK_EXAMPLE, MAKE_MY_TASK, walkthrough, CHECK_WALKTHROUGH]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEO_", "HYDRA_"))}
    env["LEO_CACHE_DIR"] = os.environ["LEO_CACHE_DIR"]  # the tests' precision-probe cache
    proc = subprocess.run(
        [sys.executable, "-c", program],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "README OK" in proc.stdout
    # The run went where the README says: outputs/ and data/ under the current directory.
    assert list(tmp_path.glob("outputs/runs/*/*/results.json"))
    assert (tmp_path / "data" / "glyphs").is_dir()
