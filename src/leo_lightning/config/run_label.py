"""What a run is called: the overrides it was started with.

Why: TensorBoard names a run by its folder, and a run folder is named by the time it started
(`multiruns/2026-12-06/12-19-00-123456/3/tensorboard`), which says nothing of what the run
varied. The TensorBoard logger writes into `<run>/tensorboard/<label>`, the label being the
run's overrides (`strategy=maml,model.latent_dim=128`), so the runs of a sweep are told apart
in TensorBoard's run list by what they change.

A run keeps the label it started with: a resumed run (whose command may name the folder instead
of repeating the overrides) writes into the one label folder its first start made, and a run
started before labels existed, whose events lie in `tensorboard/` itself, goes on writing there.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

STARTING_KEYS = ("ckpt_path", "overwrite")  # say how a run starts, not what it is
NO_OVERRIDES = "defaults"  # the label of a run started without overrides
MAX_LENGTH = 100  # characters; a longer label is cut and ends in a hash of the whole
UNSAFE = re.compile(r"[^A-Za-z0-9._=,+~@:-]")  # anything else would be a path or shell hazard
RESOLVER = "leo_run_label"


def override_key(override: str) -> str:
    """`+model.x=1` and `~callbacks.y` -> their key."""
    return override.split("=", 1)[0].lstrip("+~")


def without_starting_keys(overrides: list[str] | None) -> list[str]:
    """The overrides, in their order, less the ones that only say how a run starts
    (ckpt_path, overwrite)."""
    return [o for o in overrides or [] if override_key(o) not in STARTING_KEYS]


def job_overrides(overrides: list[str] | None) -> list[str]:
    """What makes a run the job it is: its command-line overrides less the starting ones,
    sorted so that their order does not matter."""
    return sorted(without_starting_keys(overrides))


def label_of(overrides: list[str]) -> str:
    """One folder name for a list of overrides, in the order they were given (a sweep's key
    first on the command line is first in the name): a group's `/` written `.`, every other
    character a path cannot hold safely replaced by `_`, cut with a hash when long."""
    given = without_starting_keys(overrides)
    text = ",".join(_dotted_key(o) for o in given) or NO_OVERRIDES
    text = UNSAFE.sub("_", text)
    if len(text) > MAX_LENGTH:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        text = f"{text[: MAX_LENGTH - 9]}-{digest}"
    return text


def _dotted_key(override: str) -> str:
    """`model/backbone=resnet12` -> `model.backbone=resnet12`; a value keeps its `/` (then `_`)."""
    key, equals, value = override.partition("=")
    return key.replace("/", ".") + equals + value


def run_label(run_dir: str) -> str:
    """The label of the run in `run_dir` (the `leo_run_label` resolver of
    conf/logger/tensorboard.yaml): the one its first start chose if it has started before, ""
    (no label folder) for a run whose events lie in `tensorboard/` itself, else from this job's
    overrides. Outside a Hydra job (a config composed by hand) there are no overrides."""
    logs = Path(run_dir) / "tensorboard"
    if logs.is_dir():
        if any(logs.glob("events.out.tfevents.*")):
            return ""
        started = [p.name for p in logs.iterdir() if p.is_dir()]
        if len(started) == 1:
            return started[0]
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    return label_of(overrides)


def register_run_label_resolver() -> None:
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, run_label)
