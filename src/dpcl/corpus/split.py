"""Assign speakers and utterances to the WSJ0-2mix splits `tr`, `cv` and `tt`.

As in WSJ0-2mix, test speakers are unseen (in neither `tr` nor `cv`), while training and
validation share speakers and differ in utterances. Speaker groups (recordings that may be
one person) move as a whole: naming one member as a test speaker sends its group-mates to
`tt` too. A drawn test set is at least half real speakers when there are any: synthetic
voices are easier to separate (DESIGN.md section 5), and a test on them alone flatters.
"""

from __future__ import annotations

import logging
import math
from typing import Mapping, Sequence

import numpy as np

from dpcl.config import CorpusConfig
from dpcl.corpus.plan import CorpusError, SpeakerPlan, stable_rng

log = logging.getLogger(__name__)


def check_test_names(names: Sequence[str], plans: Sequence[SpeakerPlan]) -> None:
    """Unknown test speaker names are an error listing the speakers there are."""
    available = sorted(p.speaker for p in plans)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise CorpusError(f"test_speakers: unknown speaker(s) {unknown}; the configured sources have: "
                          f"{', '.join(available)}")


def _with_groups(chosen: set[str], plans: Mapping[str, SpeakerPlan]) -> set[str]:
    groups = {plans[s].group for s in chosen}
    return {s for s, p in plans.items() if p.group in groups}


def _draw(candidates: list[str], count: int, chosen: set[str], plans: Mapping[str, SpeakerPlan],
          rng: np.random.Generator) -> set[str]:
    """Add candidates in a seeded order (with their groups) until `count` of them are chosen."""
    added = 0
    for index in rng.permutation(len(candidates)):
        if added >= count:
            break
        if candidates[index] not in chosen:
            grown = _with_groups(chosen | {candidates[index]}, plans)
            added += len(grown & set(candidates)) - len(chosen & set(candidates))
            chosen = grown
    return chosen


def choose_test_speakers(cfg: CorpusConfig, plans: Sequence[SpeakerPlan]) -> list[str]:
    """`cfg.test_speakers` if given, else `cfg.n_test_speakers` drawn with the seed; groups expanded."""
    by_id = {p.speaker: p for p in plans}
    if cfg.test_speakers:
        check_test_names(cfg.test_speakers, plans)
        chosen = _with_groups(set(cfg.test_speakers), by_id)
    else:
        real = sorted(s for s, p in by_id.items() if p.kind == "real")
        synthetic = sorted(s for s, p in by_id.items() if p.kind == "synthetic")
        n = cfg.n_test_speakers
        n_real = min(len(real), max(math.ceil(n / 2), n - len(synthetic)))
        rng = stable_rng(cfg.seed, "test-speakers")
        chosen = _draw(real, n_real, set(), by_id, rng)
        chosen = _draw(synthetic, n - len(chosen), chosen, by_id, rng)
    extra = sorted(chosen - set(cfg.test_speakers)) if cfg.test_speakers else []
    if extra:
        log.info("test split: %s join their group-mates in tt", ", ".join(extra))
    if len(chosen) < 2:
        raise CorpusError(f"the test split needs at least 2 speakers, got {sorted(chosen)}")
    if len(by_id) - len(chosen) < 2:
        raise CorpusError(f"only {len(by_id) - len(chosen)} speaker(s) left for training after "
                          f"{len(chosen)} test speakers: add sources or name fewer test speakers")
    return sorted(chosen)


def assign_splits(speakers: Mapping[str, int], test: Sequence[str], fraction: float, seed: int) -> dict[str, list[str]]:
    """Split label per utterance index, per speaker (`speakers` maps speaker -> utterance count).

    A training speaker gives round(fraction * n) of its utterances to `cv` (at least one,
    never all), drawn with a generator of its own so the choice survives adding speakers.
    """
    labels = {}
    for speaker, count in speakers.items():
        if speaker in test:
            labels[speaker] = ["tt"] * count
            continue
        n_cv = min(count - 1, max(1, round(fraction * count)))
        cv = set(stable_rng(seed, "validation", speaker).choice(count, size=n_cv, replace=False).tolist())
        labels[speaker] = ["cv" if i in cv else "tr" for i in range(count)]
    return labels
