"""Where a trained model's test errors are: by alphabet, by rotation, and what it confuses.

Accuracy says how often a model is wrong; this says on what. Every query of the fixed test
episodes is traced back to the pool classes behind its true and its predicted label
(`FixedEpisodes.classes`), so the errors can be counted per group of classes (Omniglot: the
alphabet), per rotation (Omniglot's classes are characters turned by 0, 90, 180 or 270 degrees)
and by kind of confusion: the same character turned another way, another character of the same
alphabet, or a character of another alphabet.

A kind of confusion is only telling beside how often it would occur by chance: an episode with
two rotations of one character invites that confusion whatever the model. So each kind is
reported with its `chance` share: the share it would have if every error picked one of the
episode's other classes uniformly at random.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import default_collate

from leo_lightning.data.class_pool import ClassPool
from leo_lightning.data.episodes import FixedEpisodes
from leo_lightning.training.metrics import EpisodeAccuracy

ROTATION = re.compile(r"/rot(\d+)$")  # Omniglot's class names end in /rot0 ... /rot270
KINDS = ("other rotation of the same character", "same alphabet", "other alphabet")
KINDS_WITHOUT_GROUPS = (KINDS[0], "other class")  # a pool whose classes have no alphabet


@dataclass(frozen=True)
class QueryOutcomes:
    """One entry per query of every episode analysed ([Q] each, Q = episodes x N x queries)."""

    true_class: Tensor  # pool class of the query
    predicted_class: Tensor  # pool class of the label the model chose
    episode: Tensor  # the episode's index in the fixed list
    # [E, N]: the pool classes of each analysed episode (row e: episode episode_ids[e]).
    episode_classes: Tensor
    episode_ids: Tensor  # [E]


def collect_outcomes(module, episodes: FixedEpisodes, batch_size: int = 8) -> QueryOutcomes:
    """Run `module` (a LEOModule, any strategy, on its device) on every episode of `episodes`
    as the test step does, and keep what each query was and what it was taken for."""
    true, predicted, owner, classes_seen = [], [], [], []
    module.eval()
    for start in range(0, len(episodes), batch_size):
        stop = min(start + batch_size, len(episodes))
        drawn = [episodes.episode_and_classes(i) for i in range(start, stop)]
        batch = default_collate([episode for episode, _ in drawn])
        classes = torch.stack([c for _, c in drawn])  # [B, N]: the pool class of each label
        with torch.no_grad():  # as under Lightning's test loop; adaptation enables its own grad
            out, _, _ = module.adapt_and_score(batch.to(module.device))
        predictions = out.query_logits.argmax(dim=-1).cpu()  # [B, N*Q] labels
        true.append(classes.gather(1, batch.query_y))  # [B, N*Q] pool classes
        predicted.append(classes.gather(1, predictions))
        owner.append(batch.index[:, None].expand_as(batch.query_y))
        classes_seen.append(classes)
    return QueryOutcomes(
        torch.cat(true).flatten(),
        torch.cat(predicted).flatten(),
        torch.cat(owner).flatten(),
        torch.cat(classes_seen),
        torch.arange(len(episodes)),
    )


def summarize(outcomes: QueryOutcomes, pool: ClassPool, top: int = 10) -> dict:
    """Accuracy over episodes (mean and 95% CI, as the test step reports it), per alphabet,
    per rotation, and the errors by kind (with chance shares) and by most confused pair."""
    names = pool.class_names
    correct = outcomes.true_class == outcomes.predicted_class  # [Q]
    per_episode = EpisodeAccuracy()
    for index in outcomes.episode_ids.tolist():
        per_episode.update(correct[outcomes.episode == index].float().mean().view(1))
    mean, ci95, count = per_episode.compute()
    character = [_character(name) for name in names]
    grouped = pool.groups is not None
    alphabet = [_alphabet(pool, c) for c in range(len(names))] if grouped else None
    true = outcomes.true_class.tolist()
    hits = correct.tolist()
    wrong = [(t, p) for t, p, ok in zip(true, outcomes.predicted_class.tolist(), hits) if not ok]
    return {
        "episodes": int(count),
        "queries": len(true),
        "accuracy": float(mean),
        "accuracy_ci95": float(ci95),
        "errors": len(wrong),
        "by_alphabet": _accuracy_by([alphabet[t] for t in true], correct) if grouped else None,
        "by_rotation": _accuracy_by([_rotation(names[t]) for t in true], correct),
        "error_kinds": _error_kinds(wrong, outcomes, character, alphabet),
        "most_confused": [
            {"true": names[t], "predicted": names[p], "count": n}
            for (t, p), n in Counter(wrong).most_common(top)
        ],
    }


def _accuracy_by(keys: list[str], correct: Tensor) -> dict[str, dict]:
    """Query accuracy and query count per key, keys in sorted order."""
    hits, totals = Counter(), Counter(keys)
    for key, ok in zip(keys, correct.tolist()):
        hits[key] += ok
    return {k: {"accuracy": hits[k] / totals[k], "queries": totals[k]} for k in sorted(totals)}


def _error_kinds(
    wrong: list[tuple[int, int]],
    outcomes: QueryOutcomes,
    character: list[str],
    alphabet: list[str] | None,
) -> dict[str, dict]:
    """Each kind's count and share of the errors, and its chance share: the mean, over the
    queries answered wrongly, of the fraction of the episode's other classes of that kind.
    Without alphabets (`alphabet` None) the kinds are a rotation or another class."""
    kinds = KINDS if alphabet is not None else KINDS_WITHOUT_GROUPS

    def kind(a: int, b: int) -> str:
        if character[a] == character[b]:
            return kinds[0]
        if alphabet is None:
            return kinds[1]
        return kinds[1] if alphabet[a] == alphabet[b] else kinds[2]

    rows = {index: row for row, index in enumerate(outcomes.episode_ids.tolist())}
    wrong_episodes = outcomes.episode[outcomes.true_class != outcomes.predicted_class].tolist()
    counts, chance = Counter(), Counter()
    for (true, predicted), index in zip(wrong, wrong_episodes):
        counts[kind(true, predicted)] += 1
        others = [c for c in outcomes.episode_classes[rows[index]].tolist() if c != true]
        for other in others:
            chance[kind(true, other)] += 1 / len(others)
    total = max(len(wrong), 1)
    return {
        k: {"count": counts[k], "share": counts[k] / total, "chance": chance[k] / total}
        for k in kinds
    }


def _character(name: str) -> str:
    return ROTATION.sub("", name)


def _rotation(name: str) -> str:
    match = ROTATION.search(name)
    return f"{match.group(1)} deg" if match else "none"


def _alphabet(pool: ClassPool, cls: int) -> str:
    """The class's group without its rotation (Omniglot groups are 'Korean/rot90')."""
    return _character(pool.group_names[int(pool.groups[cls])])


__all__ = ["KINDS", "KINDS_WITHOUT_GROUPS", "QueryOutcomes", "collect_outcomes", "summarize"]
