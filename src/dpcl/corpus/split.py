"""Assign speakers and utterances to the WSJ0-2mix splits `tr`, `cv` and `tt`.

As in WSJ0-2mix, test speakers are unseen (in neither `tr` nor `cv`), while training and
validation share speakers and differ in utterances. The identity rules (DESIGN.md section 5):

- A speaker group (recordings that may be one person: a KDE language, a game's cast) moves as
  a whole: naming one member as a test speaker sends its group-mates to `tt` too.
- `tt` holds only speakers of known identity (`identity == "known"`): a character name is no
  proof of a distinct actor, so such speakers may train, never test. An uncertain speaker whose
  group goes to `tt` is left out of the corpus altogether: it may be the test speaker's actor,
  so it can be neither tested nor trained on.
- `tt` holds real voices only unless `synthetic_in_test` (a synthetic-only corpus, CI): formant
  voices are easy to separate and a test on them flatters. When synthetic voices are allowed,
  a drawn test set is still at least half real speakers where there are any.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Mapping, Sequence

import numpy as np

from dpcl.config import CorpusConfig
from dpcl.corpus.plan import CorpusError, SpeakerPlan, stable_rng

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TestChoice:
    """The test speakers, and the uncertain speakers that share a group with one of them."""

    test: list[str]
    excluded: list[str]


def check_test_names(names: Sequence[str], plans: Sequence[SpeakerPlan]) -> None:
    """Unknown test speaker names are an error listing the speakers there are."""
    available = sorted(p.speaker for p in plans)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise CorpusError(f"test_speakers: unknown speaker(s) {unknown}; the configured sources have: "
                          f"{', '.join(available)}")


def may_test(plan: SpeakerPlan, synthetic_in_test: bool) -> bool:
    """Whether a speaker may sit in `tt` at all: known identity, and real unless allowed otherwise."""
    return plan.identity == "known" and (plan.kind == "real" or synthetic_in_test)


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


def choose_test_speakers(cfg: CorpusConfig, plans: Sequence[SpeakerPlan]) -> TestChoice:
    """`cfg.test_speakers` if given, else `cfg.n_test_speakers` drawn with the seed; groups expanded.

    Group-mates that may not be tested (uncertain identity) are returned as `excluded`; a
    group-mate that is synthetic when synthetic voices may not test is an error (a group joins
    voices that may be one person, and a synthetic voice is nobody's).
    """
    by_id = {p.speaker: p for p in plans}
    allowed = {s for s, p in by_id.items() if may_test(p, cfg.synthetic_in_test)}
    if cfg.test_speakers:
        check_test_names(cfg.test_speakers, plans)
        refused = [s for s in cfg.test_speakers if s not in allowed]
        if refused:
            reasons = [f"{s} ({'identity uncertain: a character, not a credited voice' if by_id[s].identity != 'known' else 'synthetic; set corpus.synthetic_in_test to allow'})"
                       for s in refused]
            raise CorpusError(f"test_speakers: {', '.join(reasons)} may not be a test speaker")
        chosen = _with_groups(set(cfg.test_speakers), by_id)
    else:
        real = sorted(s for s in allowed if by_id[s].kind == "real")
        synthetic = sorted(s for s in allowed if by_id[s].kind == "synthetic")
        if not real and not synthetic:
            raise CorpusError("no speaker may be a test speaker: the sources hold no real voice of known identity "
                              "(set corpus.synthetic_in_test for a corpus of synthetic voices)")
        n = cfg.n_test_speakers
        n_real = min(len(real), max(math.ceil(n / 2), n - len(synthetic)))
        rng = stable_rng(cfg.seed, "test-speakers")
        chosen = _draw(real, n_real, set(), by_id, rng)
        chosen = _draw(synthetic, n - len(chosen & allowed), chosen, by_id, rng)
    excluded = sorted(s for s in chosen if s not in allowed and by_id[s].identity != "known")
    wrong = sorted(s for s in chosen if s not in allowed and s not in excluded)
    if wrong:
        raise CorpusError(f"test split: {', '.join(wrong)} share a group with a test speaker but are synthetic; "
                          f"set corpus.synthetic_in_test or name other test speakers")
    test = chosen - set(excluded)
    extra = sorted(test - set(cfg.test_speakers)) if cfg.test_speakers else []
    if extra:
        log.info("test split: %s join their group-mates in tt", ", ".join(extra))
    if excluded:
        log.info("left out: %s (uncertain identity, in a test speaker's group)", ", ".join(excluded))
    if len(test) < 2:
        raise CorpusError(f"the test split needs at least 2 speakers, got {sorted(test)}")
    if len(by_id) - len(chosen) < 2:
        raise CorpusError(f"only {len(by_id) - len(chosen)} speaker(s) left for training after "
                          f"{len(test)} test speakers: add sources or name fewer test speakers")
    return TestChoice(test=sorted(test), excluded=excluded)


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
