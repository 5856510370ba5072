"""The pre-computed WRN-28-10 embeddings released with the original LEO code.

Files: ``<root>/<miniImageNet|tieredImageNet>/<center|multiview>/<train|val|test>_embeddings.pkl``
(tieredImageNet has ``center`` only), each a pickled (Python 2, read with latin-1) dict with
``embeddings``, a float array [n, 640], and ``keys``, n strings ``<prefix>-<class>-<image file>``
whose image file name starts with ``<class>_``. The class of an example is the ``<class>`` part of
its key; classes are numbered in sorted order. Features are L2-normalised per example (as the
original does) and kept as float32 [n, 640].

Unpickling can run arbitrary code, so the files are read with an unpickler that only accepts the
types such a file is made of (numpy arrays, dtypes and scalars, and plain Python containers);
anything else is refused with an error naming the file.

`write_embedding_file` writes the same layout (`leo-embed leo_layout=<name>`), so that features of
this project's pretraining can be read by code written for the original's files, and by
`data=leo_embeddings data.source.dataset=<name>` here: a dataset folder other than the two
originals may hold either view.
"""

from __future__ import annotations

import logging
import os
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from leo_lightning.data.class_pool import ClassPool
from leo_lightning.errors import DataError, DataNotFoundError

__all__ = ["DATASETS", "LEOEmbeddingSource", "read_embedding_file", "write_embedding_file"]

logger = logging.getLogger(__name__)

VIEWS = ("center", "multiview")
DATASETS = {"miniImageNet": VIEWS, "tieredImageNet": ("center",)}  # the original's files
SPLITS = ("train", "val", "test")
DOWNLOAD_HINT = (
    "the files come with the original LEO code (github.com/deepmind/leo, README: "
    "http://storage.googleapis.com/leo-embeddings/embeddings.zip); unpack the archive so that "
    "this path exists"
)

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol < 3
}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a pickled dict of numpy arrays needs."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        with warnings.catch_warnings():  # numpy 2 warns about the numpy.core alias
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().find_class(module, name)


def _text(key: object) -> str:
    if isinstance(key, (bytes, np.bytes_)):
        return bytes(key).decode("latin-1")
    return str(key)


def read_embedding_file(path: Path) -> ClassPool:
    """One ``<split>_embeddings.pkl`` as a ClassPool of unit-norm float32 features."""
    try:
        with open(path, "rb") as handle:
            data = _ArrayUnpickler(handle, encoding="latin1").load()
    except FileNotFoundError as error:
        raise DataNotFoundError(f"LEO embedding file {path} not found") from error
    except Exception as error:  # UnpicklingError, EOFError, ValueError, ...
        raise DataError(f"cannot read LEO embedding file {path}: {error}") from error
    if not isinstance(data, dict) or "embeddings" not in data or "keys" not in data:
        found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise DataError(
            f"LEO embedding file {path} must hold a dict with 'embeddings' and 'keys'; "
            f"found {found}"
        )
    embeddings = np.asarray(data["embeddings"], dtype=np.float32)
    keys = [_text(k) for k in data["keys"]]
    if embeddings.ndim != 2 or embeddings.shape[0] != len(keys):
        raise DataError(
            f"LEO embedding file {path}: 'embeddings' must be [n, features] with one row per "
            f"key; got shape {embeddings.shape} for {len(keys)} keys"
        )
    if not np.isfinite(embeddings).all():
        raise DataError(f"LEO embedding file {path}: 'embeddings' holds NaN or infinite values")
    classes_of = []
    for key in keys:
        parts = key.rsplit("-", 2)
        if len(parts) != 3 or not parts[2].startswith(f"{parts[1]}_"):
            raise DataError(
                f"LEO embedding file {path}: key {key!r} is not '<prefix>-<class>-<class>_<file>'"
            )
        classes_of.append(parts[1])
    classes = sorted(set(classes_of))
    ids = {name: i for i, name in enumerate(classes)}
    labels = torch.tensor([ids[c] for c in classes_of], dtype=torch.long)
    features = F.normalize(torch.from_numpy(embeddings), dim=1)
    return ClassPool.from_labels(features, labels, classes)


def key_token(class_name: str) -> str:
    """A class name as the `<class>` part of a key: '-' separates a key's parts, so it becomes
    '_' (and '/', ' ' too, which a reader might take for a path or a separator)."""
    return class_name.replace("-", "_").replace("/", "_").replace(" ", "_")


def key_problems(class_names: Sequence[str]) -> list[str]:
    """Class names that would share a key token (a file that merges two classes)."""
    seen: dict[str, str] = {}
    problems = []
    for name in class_names:
        token = key_token(name)
        if token in seen:
            problems.append(f"classes {seen[token]!r} and {name!r} would both be {token!r}")
        seen.setdefault(token, name)
    return problems


def write_embedding_file(
    path: Path, split: str, features: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]
) -> Path:
    """One `<split>_embeddings.pkl` of the original layout: `embeddings` [n, F] float32 and
    `keys` `<split>-<class>-<class>_<index>`, pickled at protocol 2 (what the original's Python 2
    files are), written atomically."""
    problems = key_problems(class_names)
    if problems:
        raise DataError(f"{path}: {'; '.join(problems)}")
    tokens = [key_token(name) for name in class_names]
    keys = [f"{split}-{tokens[c]}-{tokens[c]}_{i:06d}" for i, c in enumerate(labels.tolist())]
    data = {"embeddings": features.detach().float().cpu().numpy(), "keys": keys}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        pickle.dump(data, handle, protocol=2)
    os.replace(tmp, path)
    return path


class LEOEmbeddingSource:
    """miniImageNet / tieredImageNet as the original LEO's pre-computed 640-d features, or any
    dataset written in their layout (leo-embed leo_layout=<name>)."""

    def __init__(
        self, root: str | os.PathLike, dataset: str = "miniImageNet", view: str = "center"
    ):
        views = DATASETS.get(dataset, VIEWS)
        if view not in views:
            raise DataError(f"data.source.view={view!r}: {dataset} has the view(s) {list(views)}")
        self.root, self.dataset, self.view = Path(root), dataset, view

    def path(self, split: str) -> Path:
        return self.root / self.dataset / self.view / f"{split}_embeddings.pkl"

    def _check_files(self) -> None:
        missing = [self.path(s) for s in SPLITS if not self.path(s).is_file()]
        if missing:
            listed = ", ".join(str(p.resolve()) for p in missing)
            raise DataNotFoundError(
                f"LEO embedding file(s) not found: {listed}. Set data.source.root to the folder "
                f"that holds {self.dataset}/ (data.source.dataset: {', '.join(DATASETS)}, or the "
                f"name given to leo-embed leo_layout=<name>); {DOWNLOAD_HINT}"
            )

    def prepare(self) -> None:
        """Nothing to decode or download: only checks that the three files are in place."""
        self._check_files()

    def load(self) -> dict[str, ClassPool]:
        self._check_files()
        pools = {}
        for split in SPLITS:
            pools[split] = read_embedding_file(self.path(split))
            logger.info(
                "%s %s %s: %d classes, %d examples of %d features",
                self.dataset,
                self.view,
                split,
                pools[split].n_classes,
                len(pools[split].data),
                pools[split].data.shape[1],
            )
        return pools
