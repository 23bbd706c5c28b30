"""The corpus stage's outputs besides the wavs: `manifest.csv` and `summary.json`.

The manifest is the contract with the mixer: one row per utterance, columns fixed here and
nowhere else, paths relative to the corpus folder so the folder can move (DVC caches it).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

COLUMNS = ("speaker", "utterance", "path", "duration", "source", "language", "sex", "kind", "split")
SPLITS = ("tr", "cv", "tt")


def manifest_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> DataFrame with exactly COLUMNS, sorted by speaker and utterance."""
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["duration"] = frame["duration"].astype("float64")
    return frame.sort_values(["speaker", "utterance"], ignore_index=True)


def _counts(frame: pd.DataFrame) -> dict[str, Any]:
    return {"speakers": int(frame["speaker"].nunique()), "utterances": int(len(frame)),
            "hours": round(float(frame["duration"].sum()) / 3600, 4)}


def summarise(frame: pd.DataFrame, *, sample_rate: int, test_speakers: list[str],
              dropped: dict[str, str], skipped: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Speakers, utterances and hours in total, per source, per split and per source x split."""
    return {
        "sample_rate": sample_rate,
        "total": _counts(frame),
        "by_source": {s: _counts(g) for s, g in frame.groupby("source")},
        "by_split": {s: _counts(frame[frame["split"] == s]) for s in SPLITS},
        "by_source_split": {s: {t: _counts(g[g["split"] == t]) for t in SPLITS if (g["split"] == t).any()}
                            for s, g in frame.groupby("source")},
        "by_kind": {k: _counts(g) for k, g in frame.groupby("kind")},
        "test_speakers": test_speakers,
        "dropped_speakers": dropped,
        "skipped_clips": {s: c for s, c in skipped.items() if c},
    }
