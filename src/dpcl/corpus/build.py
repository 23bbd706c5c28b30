"""The `corpus` stage: sources -> speakers -> utterance wavs, manifest.csv and summary.json.

Order of work, chosen so that mistakes cost seconds, not minutes: plan every source first
(downloads, listings, tool and name checks), then render speakers in parallel worker
processes inside a staging folder, then split and write the manifest. The output folder
appears only when everything succeeded (`atomic_dir`); a failure leaves the previous
output untouched.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Sequence

import pandas as pd
from tqdm import tqdm

from dpcl.atomic import atomic_dir, write_json
from dpcl.config import CorpusConfig
from dpcl.corpus.manifest import manifest_frame, summarise
from dpcl.corpus.plan import CorpusError, SpeakerPlan
from dpcl.corpus.render import RenderResult, RenderSettings, render_speaker
from dpcl.corpus.sources import PLANNERS
from dpcl.corpus.split import assign_splits, check_test_names, choose_test_speakers

log = logging.getLogger(__name__)


def plan_corpus(cfg: CorpusConfig) -> list[SpeakerPlan]:
    """Every speaker of every configured source; test speaker names checked against them."""
    plans: list[SpeakerPlan] = []
    for source in tqdm(cfg.sources, desc="corpus: sources", unit="source"):
        plans += PLANNERS[source](cfg)
    seen: set[str] = set()
    for plan in plans:
        if plan.speaker in seen:
            raise CorpusError(f"two sources both produce speaker {plan.speaker!r}")
        seen.add(plan.speaker)
    if cfg.test_speakers:
        check_test_names(cfg.test_speakers, plans)
    return plans


def default_workers() -> int:
    """CPUs this process may use (respects taskset and container CPU sets where the OS tells)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def render_all(plans: Sequence[SpeakerPlan], settings: RenderSettings, out_dir: Path,
               workers: int) -> list[RenderResult]:
    """Render every speaker, in worker processes when `workers` > 1; results in plan order."""
    with tqdm(total=len(plans), desc="corpus: speakers", unit="speaker") as bar:
        if workers <= 1 or len(plans) <= 1:
            results = []
            for plan in plans:
                results.append(render_speaker(plan, settings, out_dir))
                bar.update()
            return results
        # fork: workers start in milliseconds with numpy/scipy already imported, and a caller's
        # script needs no `if __name__ == "__main__"` guard (spawn and forkserver re-import it).
        # Workers touch no lock the parent's threads hold (they neither log nor draw bars).
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with concurrent.futures.ProcessPoolExecutor(min(workers, len(plans)), mp_context=context) as executor:
            # Synthetic voices first: a TTS speaker costs the most (one engine run per sentence),
            # and starting the long tasks early keeps both workers busy to the end.
            ordered = sorted(plans, key=lambda plan: plan.kind != "synthetic")
            futures = {executor.submit(render_speaker, plan, settings, out_dir): plan.speaker for plan in ordered}
            done: dict[str, RenderResult] = {}
            try:
                for future in concurrent.futures.as_completed(futures):
                    done[futures[future]] = future.result()
                    bar.update()
            except BaseException:
                executor.shutdown(wait=True, cancel_futures=True)  # let no worker write on
                raise
    return [done[plan.speaker] for plan in plans]


def build_corpus(cfg: CorpusConfig, out_dir: Path, workers: int | None = None) -> pd.DataFrame:
    """Build the corpus into `out_dir` (replaced atomically) and return its manifest.

    `workers`: processes rendering speakers (default: the usable CPUs; 1 renders in-process).
    """
    out_dir = Path(out_dir)
    plans = plan_corpus(cfg)
    settings = RenderSettings(rate=cfg.sample_rate, min_s=cfg.min_utterance_s, max_s=cfg.max_utterance_s,
                              max_utterances=cfg.max_utterances_per_speaker,
                              min_utterances=cfg.min_utterances_per_speaker, seed=cfg.seed)
    with atomic_dir(out_dir) as staging:
        results = render_all(plans, settings, staging, workers or default_workers())
        dropped = {r.speaker: r.dropped for r in results if r.dropped}
        for speaker, reason in dropped.items():
            log.warning("dropping speaker %s: %s", speaker, reason)
        lost = [s for s in cfg.test_speakers if s in dropped]
        if lost:
            raise CorpusError(f"test_speakers {lost} were dropped: {'; '.join(dropped[s] for s in lost)}. "
                              f"Name other test speakers or lower min_utterances_per_speaker")
        kept = [plan for plan, result in zip(plans, results) if not result.dropped]
        if not kept:
            raise CorpusError(f"no speaker has {cfg.min_utterances_per_speaker} utterances of "
                              f"{cfg.min_utterance_s:g}-{cfg.max_utterance_s:g} s; dropped: {dropped}")
        choice = choose_test_speakers(cfg, kept)
        test = choice.test
        for speaker in choice.excluded:
            shutil.rmtree(staging / speaker, ignore_errors=True)
        rows_by_speaker = {r.speaker: r.rows for r in results if not r.dropped and r.speaker not in choice.excluded}
        labels = assign_splits({s: len(rows) for s, rows in rows_by_speaker.items()}, test,
                               cfg.validation_fraction, cfg.seed)
        rows = [dict(row, split=labels[speaker][i])
                for speaker, speaker_rows in rows_by_speaker.items() for i, row in enumerate(speaker_rows)]
        frame = manifest_frame(rows)
        frame.to_csv(staging / "manifest.csv", index=False)
        log.info("%d speakers, %.2f h; utterances tr %d, cv %d, tt %d; test speakers: %s",
                 frame["speaker"].nunique(), frame["duration"].sum() / 3600,
                 *(int((frame["split"] == s).sum()) for s in ("tr", "cv", "tt")), ", ".join(test))
        write_json(staging / "summary.json", summarise(
            frame, sample_rate=cfg.sample_rate, test_speakers=test, dropped=dropped,
            skipped={r.speaker: r.skipped for r in results}, excluded=choice.excluded))
    return frame
