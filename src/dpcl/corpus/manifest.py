"""The corpus stage's outputs besides the wavs: `manifest.csv` and `summary.json`.

The manifest is the contract with the mixer: one row per utterance, columns fixed here and
nowhere else, paths relative to the corpus folder so the folder can move (DVC caches it).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

# `group`: speakers that may be one person (a mixture never joins two of one group);
# `identity`: "known" or "uncertain" (a character name; never in `tt`). See corpus/split.py.
COLUMNS = ("speaker", "utterance", "path", "duration", "source", "language", "sex", "kind", "group",
           "identity", "split")
SPLITS = ("tr", "cv", "tt")


def manifest_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> DataFrame with exactly COLUMNS, sorted by speaker and utterance."""
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["duration"] = frame["duration"].astype("float64")
    return frame.sort_values(["speaker", "utterance"], ignore_index=True)


def _counts(frame: pd.DataFrame) -> dict[str, Any]:
    return {"speakers": int(frame["speaker"].nunique()), "utterances": int(len(frame)),
            "hours": round(float(frame["duration"].sum()) / 3600, 4)}


def training_totals(frame: pd.DataFrame) -> dict[str, Any]:
    """What the model learns from (`tr` and `cv`): real hours and speakers, and the synthetic share.

    The figures the default corpus is held to (at least 6 h of real speech from 50 real speakers,
    synthetic voices at most a quarter of the hours), written so a run shows whether it meets them.
    """
    train = frame[frame["split"] != "tt"]
    real, synthetic = train[train["kind"] == "real"], train[train["kind"] == "synthetic"]
    hours = float(train["duration"].sum()) / 3600
    return {"real_hours": round(float(real["duration"].sum()) / 3600, 4),
            "real_speakers": int(real["speaker"].nunique()),
            "real_groups": int(real["group"].nunique()) if "group" in real else None,
            "synthetic_hours": round(float(synthetic["duration"].sum()) / 3600, 4),
            "synthetic_speakers": int(synthetic["speaker"].nunique()),
            "synthetic_share": round(float(synthetic["duration"].sum()) / 3600 / hours, 4) if hours else 0.0}


def test_totals(frame: pd.DataFrame) -> dict[str, Any]:
    """The test split's breadth: speakers, sources, languages, kinds and identities."""
    test = frame[frame["split"] == "tt"]
    return {"speakers": int(test["speaker"].nunique()), "sources": sorted(test["source"].unique().tolist()),
            "languages": sorted(test["language"].unique().tolist()),
            "kinds": sorted(test["kind"].unique().tolist()),
            "identities": sorted(test["identity"].unique().tolist()) if "identity" in test else []}


def summary_table(frame: pd.DataFrame) -> str:
    """Hours and speakers per source and split, as printed by the corpus stage."""
    lines = [f"{'source':<14}{'kind':<11}" + "".join(f"{s + ' h':>9}{s + ' spk':>8}" for s in SPLITS)]
    for (source, kind), group in frame.groupby(["source", "kind"]):
        cells = []
        for split in SPLITS:
            part = group[group["split"] == split]
            cells.append(f"{part['duration'].sum() / 3600:9.2f}{part['speaker'].nunique():8d}")
        lines.append(f"{source:<14}{kind:<11}" + "".join(cells))
    totals = training_totals(frame)
    lines.append(f"training (tr+cv): {totals['real_hours']:.2f} h real from {totals['real_speakers']} speakers "
                 f"({totals['real_groups']} groups), {totals['synthetic_hours']:.2f} h synthetic "
                 f"({100 * totals['synthetic_share']:.0f}% of the hours)")
    test = test_totals(frame)
    lines.append(f"test (tt): {test['speakers']} speakers, {len(test['sources'])} sources, "
                 f"{len(test['languages'])} languages ({', '.join(test['languages'])}), kinds {', '.join(test['kinds'])}")
    return "\n".join(lines)


def summarise(frame: pd.DataFrame, *, sample_rate: int, test_speakers: list[str],
              dropped: dict[str, str], skipped: dict[str, dict[str, int]],
              excluded: list[str] | None = None) -> dict[str, Any]:
    """Speakers, utterances and hours in total, per source, per split and per source x split."""
    return {
        "sample_rate": sample_rate,
        "training": training_totals(frame),
        "test": test_totals(frame),
        "total": _counts(frame),
        "by_source": {s: _counts(g) for s, g in frame.groupby("source")},
        "by_split": {s: _counts(frame[frame["split"] == s]) for s in SPLITS},
        "by_source_split": {s: {t: _counts(g[g["split"] == t]) for t in SPLITS if (g["split"] == t).any()}
                            for s, g in frame.groupby("source")},
        "by_kind": {k: _counts(g) for k, g in frame.groupby("kind")},
        "test_speakers": test_speakers,
        "dropped_speakers": dropped,
        "excluded_speakers": excluded or [],
        "skipped_clips": {s: c for s, c in skipped.items() if c},
    }
