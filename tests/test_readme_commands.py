"""The README's commands as a pip user runs them: a non-editable install of the built wheel in a
fresh virtual environment, each command started in an empty folder, nothing of the checkout on
the path, and none printing anything that looks like a failure.

Every `leo-*` line of the README's bash blocks is either run (with `debug=fast`, seconds, its
placeholders filled with the folders the commands before it wrote) or composed and validated
(the runs that need a download, a cluster or a user's images, and near-copies of a run), in the
installed package. A command the README gains must be added to one of the two lists below, and
an entry whose command left the README fails too: the README cannot show a command no test
tries.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT
from test_commands import COMMANDS, config_files
from test_console import ALARMING

# README command -> how it runs here, and the name its run folder is kept under: its own
# arguments plus debug=fast, the placeholders {train}, {pretrain} and {embed} being the run
# folders kept before it (relative to the folder the commands start in, as the README writes
# them). In this order.
RUN = {
    "leo-train": ("leo-train debug=fast", "train"),
    "leo-eval ckpt_path=outputs/runs/<date>/<time>/checkpoints/last.ckpt": (
        "leo-eval ckpt_path={train}/checkpoints/last.ckpt",
        None,
    ),
    "leo-predict ckpt_path=<run>/checkpoints/best-step1000.ckpt support_dir=my/support "
    "query_dir=my/queries": (
        "leo-predict ckpt_path={train}/checkpoints/last.ckpt support_dir=my/support "
        "query_dir=my/queries",
        None,
    ),
    "leo-pretrain experiment=omniglot_minimal_pretrain": (
        "leo-pretrain experiment=omniglot_minimal_pretrain debug=fast",
        "pretrain",
    ),
    "leo-embed ckpt_path=outputs/runs/<date>/<time>/checkpoints/best-step3000.ckpt": (
        "leo-embed ckpt_path={pretrain}/checkpoints/last.ckpt",
        "embed",
    ),
    "leo-train experiment=omniglot_minimal_features "
    "data.source.root=outputs/runs/<date>/<time>/embeddings": (
        "leo-train experiment=omniglot_minimal_features data.source.root={embed}/embeddings "
        "debug=fast",
        None,
    ),
}
# README command -> why it is composed and validated rather than run.
COMPOSED = {
    "leo-train model.latent_dim=128 data.k_shot=5": "the first run's code, other values",
    "leo-train experiment=glyphs_20w1s": "the first run's code, another experiment",
    "leo-train debug=fast": "what the first run runs",
    "leo-train -m model.latent_dim=32,64,128": "the first run's code, swept (tests/test_sweeps.py)",
    "leo-train -m hparams_search=optuna": "20 trials of minutes (tests/test_sweeps.py runs one)",
    "leo-train -m hparams_search=optuna experiment=omniglot_minimal_quick "
    "hydra.sweeper.study_name=omniglot hydra.sweeper.n_trials=50 "
    "model.latent_dim=16,32,64": "50 trials of minutes",
    "leo-train -m hydra/launcher=slurm hydra.launcher.partition=gpu model.latent_dim=32,64,128 "
    "model.inner_lr=0.3,1,3": "needs a SLURM cluster",
    "leo-train -m hydra/launcher=slurm hparams_search=optuna hydra.sweeper.n_jobs=8": (
        "needs a SLURM cluster"
    ),
    "leo-train -m hydra/launcher=slurm trainer=ddp trainer.devices=4 trainer.num_nodes=2": (
        "needs a SLURM cluster and 8 GPUs"
    ),
    "leo-train experiment=omniglot_minimal": "10 minutes; the pretraining run reads its data",
    "leo-train experiment=omniglot_minimal_20w": "the same data at 20 ways",
    "leo-train experiment=omniglot_minimal_quick": "the same data, 750 steps",
    "leo-train experiment=omniglot_5w1s": "downloads the full Omniglot archives",
    "leo-train experiment=miniimagenet_5w1s": "needs the original LEO's embedding files",
    "leo-train data=folder data.source.root=/path/to/images data.image_size=84 data.channels=3": (
        "needs a folder of the user's images (tests/test_folder.py runs one)"
    ),
    "leo-train experiment=omniglot_minimal_features data.source.root=<same> "
    "strategy=nearest_centroid data.source.centre=true": "the features run, another strategy",
    "leo-train experiment=omniglot_minimal model.backbone_init=<the pretrain checkpoint> "
    "model.backbone_lr_scale=0.1": "10 minutes (tests/test_pretrain_pipeline.py starts one)",
    "leo-pretrain experiment=glyphs_pretrain": "the pretraining run's code, the glyphs' recipe",
    "leo-embed ckpt_path=<its best checkpoint> views=10": (
        "the embedding run's code with views (tests/test_embed_views.py)"
    ),
    "leo-train experiment=frozen_features data.source.root=<that embed run>/embeddings": (
        "the features run's settings under their other name (tests/test_own_regime_experiments.py)"
    ),
}


COMMENT = re.compile(r"(^|\s)#.*$")


def readme_commands() -> list[str]:
    """Every `leo-*` command of the README's bash blocks: comments cut, continued lines joined,
    spaces collapsed."""
    commands, in_bash, pending = [], False, ""
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("```"):
            in_bash = line.strip() == "```bash"
            continue
        if not in_bash:
            continue
        text = f"{pending} {COMMENT.sub('', line)}".strip()
        pending = text[:-1] if text.endswith("\\") else ""
        if not pending and text.startswith("leo-"):
            commands.append(" ".join(text.split()))
    return commands


def test_every_readme_command_is_run_or_composed_here():
    shown = readme_commands()
    assert shown, "no leo-* command found in README.md's bash blocks"
    untried = [c for c in shown if c not in RUN and c not in COMPOSED]
    assert not untried, f"README commands no test tries (add them to RUN or COMPOSED): {untried}"
    stale = [c for c in [*RUN, *COMPOSED] if c not in shown]
    assert not stale, f"commands no longer in README.md: {stale}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip install .` builds from this checkout."""
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(folder), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = folder.glob("leo_lightning-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_every_config_and_every_command(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.removeprefix("leo_lightning/conf/") for n in names if "/conf/" in n)
    assert shipped == config_files(ROOT / "conf")
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for command, target in COMMANDS.items():
        assert f"{command} = {target}" in text


@pytest.fixture(scope="module")
def installed(tmp_path_factory, wheel) -> dict[str, str]:
    """A fresh venv holding the wheel of this checkout (not editable) and reaching the test
    environment's dependencies through a .pth file (nothing downloaded); its environment."""
    venv = tmp_path_factory.mktemp("pip_user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies, as a path: the .pth files there (our editable install's) are not read
    Path(site, "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q"]
        + ["--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEO_", "HYDRA_", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    env["LEO_CACHE_DIR"] = os.environ["LEO_CACHE_DIR"]  # the tests' precision-probe cache
    return env


def in_folder(env: dict, folder: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def newest_run(folder: Path) -> str:
    runs = sorted((folder / "outputs" / "runs").glob("*/*"), key=lambda p: p.stat().st_mtime)
    return str(runs[-1].relative_to(folder))


@pytest.mark.slow
def test_the_installed_package_is_the_wheels_not_the_checkout(installed, tmp_path):
    proc = in_folder(
        installed, tmp_path, "python", "-c", "import leo_lightning as l; print(l.__file__)"
    )
    assert proc.returncode == 0, proc.stderr
    assert "site-packages" in proc.stdout and str(ROOT / "src") not in proc.stdout


@pytest.mark.slow
def test_the_readme_commands_run_from_an_empty_folder(installed, tmp_path):
    from test_predict import write_folders

    write_folders(tmp_path / "my", n_way=5, shots=1)  # my/support/<class>/, my/query/
    (tmp_path / "my" / "query").rename(tmp_path / "my" / "queries")
    runs: dict[str, str] = {}
    for shown, (command, keep_as) in RUN.items():
        proc = in_folder(installed, tmp_path, *command.format(**runs).split())
        assert proc.returncode == 0, f"{shown}\n{proc.stderr[-3000:]}"
        assert not ALARMING.findall(proc.stderr), f"{shown}\n{proc.stderr}"  # a clean console
        if keep_as:
            runs[keep_as] = newest_run(tmp_path)
        if shown == "leo-train":
            assert "model: " in proc.stdout and "parameters" in proc.stdout  # its own summary
    assert {p.name for p in tmp_path.iterdir()} == {"my", "outputs", "data"}


@pytest.mark.slow
def test_the_other_readme_commands_compose_and_validate_in_the_installed_package(
    installed, tmp_path
):
    calls = []
    for shown in COMPOSED:
        # a placeholder composes as a name, a swept value as its first value
        command, *args = re.sub(r"<[^>]+>", "placeholder", shown).split()
        args = [re.sub(r"=([^=,]+),[^=]*$", r"=\1", a) for a in args if a != "-m"]
        calls.append([command.removeprefix("leo-"), args])  # its own config: train, embed, ...
    code = (
        "import json, sys\n"
        "from leo_lightning.config.compose import compose_config\n"
        "from leo_lightning.config.validation import validate\n"
        "for config, overrides in json.loads(sys.argv[1]):\n"
        "    cfg = compose_config(config, overrides)\n"
        "    validate(cfg)\n"
        "print('composed', len(json.loads(sys.argv[1])))\n"
    )
    proc = subprocess.run(
        ["python", "-c", code, json.dumps(calls)],
        cwd=tmp_path,
        env=installed,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"composed {len(COMPOSED)}" in proc.stdout
