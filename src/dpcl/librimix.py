"""Stage `mix` with `mix.recipe: librimix`: Libri2Mix / Libri3Mix from their official metadata.

The arithmetic is the reference generator's (JorisCos/LibriMix `create_librimix_from_metadata.py`,
facts in shared/librimix/SOURCE.md), so a user's LibriSpeech gives the published `mix_clean`:

1. each listed flac is read as float32 (16 kHz) and multiplied by its listed gain: the gains were
   fixed once by loudness normalisation when the metadata was made; they are data, not recomputed;
2. each is resampled with `resample_poly(x, rate, 16000)` (a copy at 16 kHz);
3. `min` truncates every signal to the shortest, `max` zero-pads to the longest;
4. a mixture is the plain sum of its signals (no common peak gain, unlike wsj0-2mix);
5. mixture and sources are written as 16-bit PCM exactly as soundfile's default conversion does
   (`to_pcm16`, clipping included), so the written mix equals the sum of the written sources up
   to rounding.

The dtypes follow the reference too (float32 throughout, float64 where it extends a short noise),
since they decide the last bit of the int16 files. The noisy variants add WHAM! noise: read up to
the longest source's length (first channel), extended by a half-second Hann crossfade when short,
then treated like a source: `mix_both` = all speakers + noise, `mix_single` = speaker 1 + noise.

Our tree instead of the reference's (so features, training, separation, scoring and the report
run unchanged): train-clean-100, dev-clean and test-clean become `tr`, `cv`, `tt`, and `mix_clean`
is `mix/`: `<mode>/<split>/{mix,s1,s2[,s3]}/<mixture_ID>.wav`, with `mix_both/`, `mix_single/`
and `noise/` beside them when asked for; `<mode>/<split>/mixtures.csv` carries the speaker facts
of the `_info.csv` files (sex feeds the report's per-sex table); `summary.json` the counts and
the sha256 of every metadata file read.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import numpy as np
import pandas as pd
import soundfile as sf
from scipy.signal import resample_poly

from dpcl.atomic import atomic_dir, write_json
from dpcl.audio import write_int16_wav
from dpcl.config import Params, params_to_dict
from dpcl.mixing import SPLITS, Mode, parallel_map
from dpcl.mixlists import MixError

SUBSETS = {"tr": "train-clean-100", "cv": "dev-clean", "tt": "test-clean"}  # our split -> LibriSpeech subset
LIBRISPEECH_RATE = 16000  # LibriSpeech and WHAM! noise, as the reference assumes
FADE = LIBRISPEECH_RATE // 2  # the reference extends noise with the halves of a 1 s Hann window
PCM16_CLIP_SCALE = 2.0**31  # libsndfile's float -> 16-bit scale with clipping on (soundfile's default)

log = logging.getLogger(__name__)


class LibriMixError(MixError):
    """LibriMix metadata, LibriSpeech or WHAM! noise is missing or not what the recipe expects."""


@dataclass(frozen=True)
class LibriMixRow:
    """One mixture of a metadata file, joined with its `_info.csv` row."""

    mixture_id: str
    sources: tuple[str, ...]  # flac paths relative to the LibriSpeech root
    gains: tuple[float, ...]  # linear, as listed (Python floats: see `transform`)
    noise: str  # wav path relative to the WHAM! noise root
    noise_gain: float
    speakers: tuple[str, ...]
    sexes: tuple[str, ...]  # M, F or unknown
    where: str  # "line 7 of .../libri2mix_dev-clean.csv": every error about the row names it


# --------------------------------------------------------------------------- metadata


def metadata_paths(folder: str | Path, n_speakers: int, split: str) -> tuple[Path, Path]:
    """The mixture and info CSVs of one split, refused with what the folder does hold if absent."""
    folder = Path(folder)
    stem = f"libri{n_speakers}mix_{SUBSETS[split]}"
    paths = (folder / f"{stem}.csv", folder / f"{stem}_info.csv")
    if not folder.is_dir():
        raise LibriMixError(f"mix.librimix_metadata {folder} is not a folder: give the folder of "
                            f"libri{n_speakers}mix_*.csv (LibriMix's metadata/Libri{n_speakers}Mix)")
    for path in paths:
        if not path.is_file():
            found = sorted(p.name for p in folder.glob("*.csv"))
            raise LibriMixError(f"{path.name} not found in {folder} (mix.n_speakers {n_speakers} reads "
                                f"Libri{n_speakers}Mix's metadata); it holds "
                                f"{', '.join(found) if found else 'no .csv files'}")
    return paths


def _read_table(path: Path, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a CSV that must have `columns`."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise LibriMixError(f"{path} lacks column(s) {', '.join(missing)} "
                                f"(has {', '.join(reader.fieldnames or []) or 'none'})")
        return [(reader.line_num, row) for row in reader]


def _gain(text: str, column: str, where: str) -> float:
    """A listed gain as Python's float() reads it: the reference parses with pandas' python engine,
    which does the same, and a Python float keeps the float32 arithmetic of `transform`."""
    try:
        value = float(text)
    except ValueError:
        raise LibriMixError(f"{column} {text!r} is not a number ({where})") from None
    if not (math.isfinite(value) and value > 0):
        raise LibriMixError(f"{column} must be a positive gain, got {text!r} ({where})")
    return value


def _speaker_id(text: str) -> str:
    """`3536.0` (the info files went through pandas as floats) -> `3536`."""
    try:
        return str(int(float(text)))
    except ValueError:
        return text.strip()


def read_metadata(folder: str | Path, n_speakers: int, split: str) -> list[LibriMixRow]:
    """Every mixture of one split, in the metadata's order, with its speakers' IDs and sex."""
    mixtures_csv, info_csv = metadata_paths(folder, n_speakers, split)
    speakers = range(1, n_speakers + 1)
    columns = ["mixture_ID", *(f"source_{i}_{k}" for i in speakers for k in ("path", "gain")), "noise_path",
               "noise_gain"]
    info = {row["mixture_ID"]: row for _, row in _read_table(
        info_csv, ["mixture_ID", *(f"speaker_{i}_{k}" for i in speakers for k in ("ID", "sex"))])}
    rows, seen = [], set()
    for line, row in _read_table(mixtures_csv, columns):
        mixture_id, where = row["mixture_ID"], f"line {line} of {mixtures_csv}"
        if not mixture_id or PurePosixPath(mixture_id).name != mixture_id or "\\" in mixture_id:
            raise LibriMixError(f"mixture_ID {mixture_id!r} cannot name a file ({where})")
        if mixture_id in seen:
            raise LibriMixError(f"mixture_ID {mixture_id} appears twice ({where})")
        seen.add(mixture_id)
        facts = info.get(mixture_id)
        if facts is None:
            raise LibriMixError(f"mixture {mixture_id} ({where}) has no row in {info_csv}")
        sexes = tuple(facts[f"speaker_{i}_sex"].strip().upper() for i in speakers)
        rows.append(LibriMixRow(
            mixture_id=mixture_id, sources=tuple(row[f"source_{i}_path"] for i in speakers),
            gains=tuple(_gain(row[f"source_{i}_gain"], f"source_{i}_gain", where) for i in speakers),
            noise=row["noise_path"], noise_gain=_gain(row["noise_gain"], "noise_gain", where),
            speakers=tuple(_speaker_id(facts[f"speaker_{i}_ID"]) for i in speakers),
            sexes=tuple(s if s in ("M", "F") else "unknown" for s in sexes), where=where))
    if not rows:
        raise LibriMixError(f"{mixtures_csv} lists no mixtures")
    return rows


def _missing_files(rows: Sequence[LibriMixRow], librispeech: Path, wham: Path | None) -> list[str]:
    """One message per listed file that is not there, checked before any audio is read: a
    LibriSpeech copy lacking a subset fails in seconds, not after an hour of mixing."""
    missing = []
    for row in rows:
        files = [(librispeech / p, f"source_{i}_path") for i, p in enumerate(row.sources, start=1)]
        files += [(wham / row.noise, "noise_path")] if wham is not None else []
        missing += [f"{path} ({column} of mixture {row.mixture_id}, {row.where})"
                    for path, column in files if not path.is_file()]
    return missing


# --------------------------------------------------------------------------- the arithmetic


def extend_noise(noise: np.ndarray, length: int) -> np.ndarray:
    """Repeat a short noise to `length` samples as the reference does: each copy fades in over
    FADE+1 samples while the tail fades out (halves of a 1 s Hann window), so no click joins them.

    The windows are float64, so the result is float64 (which the reference then mixes and writes).
    """
    if len(noise) <= FADE + 1:
        raise ValueError(f"a noise of {len(noise)} samples is too short to extend with a "
                         f"{FADE + 1}-sample crossfade")
    window = np.hanning(2 * FADE + 1)
    rise, fall = window[: FADE + 1], window[FADE::-1]
    out = noise
    while len(out) < length:
        cut = len(out) - len(fall)
        out = np.concatenate((out[:cut], out[cut:] * fall + noise[: len(rise)] * rise, noise[len(rise):]))
    return out[:length]


def transform(signals: Sequence[np.ndarray], gains: Sequence[float], rate: int) -> list[np.ndarray]:
    """Steps 1-2: listed gain, then `resample_poly` from 16 kHz (a copy when `rate` is 16 kHz).

    A float32 signal times a Python float stays float32 (NumPy's scalar rule), and resample_poly
    designs its filter in the signal's dtype: the reference's numbers, bit for bit, as it runs on
    this scipy. scipy before 1.8 (2021, scipy#14737) filtered float32 in float64, so 8 kHz copies
    made with it may differ from these by 1 LSB in a few samples (16 kHz ones do not resample).
    """
    return [resample_poly(x * g, rate, LIBRISPEECH_RATE) for x, g in zip(signals, gains)]


def fit_lengths(signals: Sequence[np.ndarray], mode: Mode) -> list[np.ndarray]:
    """Step 3: truncate to the shortest (`min`) or zero-pad to the longest (`max`)."""
    if mode == "min":
        length = min(len(x) for x in signals)
        return [x[:length] for x in signals]
    length = max(len(x) for x in signals)
    return [np.pad(x, (0, length - len(x))) for x in signals]


def mix(signals: Sequence[np.ndarray]) -> np.ndarray:
    """Step 4: the plain sum, accumulated in place in the first signal's dtype, in order."""
    out = np.zeros_like(signals[0])
    for x in signals:
        out += x
    return out


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Step 5: the int16 samples soundfile writes for float samples in a PCM_16 file, bit for bit.

    soundfile turns libsndfile's clipping on, whose conversion is not round(x * 32767): x is
    scaled by 2^31 in its own precision (float32 or float64), values at or beyond full scale
    become 32767 / -32768, the rest are rounded to the nearest integer (ties to even, lrint)
    and shifted right by 16 bits, i.e. floored to 16 bits.
    """
    scaled = samples * samples.dtype.type(PCM16_CLIP_SCALE)  # exact: a power of two
    wide = scaled.astype(np.float64)  # C compares the float with a double constant
    top, bottom = wide >= 2147483647.0, wide <= -2147483648.0
    inside = np.where(top | bottom, scaled.dtype.type(0), scaled)
    out = np.rint(inside).astype(np.int64) >> 16  # arithmetic shift: floor division by 2^16
    out[top], out[bottom] = 32767, -32768
    return out.astype("<i2")


def write_pcm16(path: Path, samples: np.ndarray, rate: int) -> int:
    """A mono 16-bit WAV through the standard library: soundfile fsyncs every file it closes, which
    costs more than the mixing (see audio.write_wav); the stage's atomic folder gives durability.

    Returns how many samples lay beyond full scale and were clipped, as soundfile clips them:
    LibriMix's gains were chosen to avoid it, so the stage counts them rather than refuse.
    """
    write_int16_wav(path, to_pcm16(samples), rate)
    return int(np.count_nonzero(np.abs(samples) > 1.0))


# --------------------------------------------------------------------------- one mixture


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs to build one mixture in every mode."""

    row: LibriMixRow
    librispeech: Path
    wham: Path | None  # None: mix_clean only, no noise read
    noisy: tuple[str, ...]  # mix_both and/or mix_single
    split_dirs: tuple[tuple[Mode, Path], ...]  # (mode, <staging>/<mode>/<split>)
    rate: int


def _read(path: Path, job: _Job, column: str, stop: int | None = None) -> np.ndarray:
    """One listed file as float32 at 16 kHz; errors name the file, the column and the row."""
    where = f"{column} of mixture {job.row.mixture_id}, {job.row.where}"
    try:
        samples, rate = sf.read(str(path), dtype="float32", stop=stop)
    except Exception as error:  # libsndfile raises several types for missing or bad files
        raise LibriMixError(f"cannot read {path} ({where}): {error}") from None
    if rate != LIBRISPEECH_RATE:
        raise LibriMixError(f"{path} is sampled at {rate} Hz; the recipe reads {LIBRISPEECH_RATE} Hz ({where})")
    if len(samples) == 0:
        raise LibriMixError(f"{path} holds no samples ({where})")
    return samples


def _build_and_write(job: _Job) -> tuple[list[int], int]:
    """Read the sources (and noise) once, write every mode's files; returns the length per mode
    and how many of the written files had samples clipped."""
    row = job.row
    speech = []
    for i, rel in enumerate(row.sources, start=1):
        samples = _read(job.librispeech / rel, job, f"source_{i}_path")
        if samples.ndim != 1:
            raise LibriMixError(f"{job.librispeech / rel} has {samples.shape[1]} channels; LibriSpeech is mono "
                                f"(source_{i}_path of mixture {row.mixture_id}, {row.where})")
        speech.append(samples)
    signals, gains = list(speech), list(row.gains)
    if job.wham is not None:
        longest = max(len(x) for x in speech)
        noise = _read(job.wham / row.noise, job, "noise_path", stop=longest)
        noise = noise if noise.ndim == 1 else noise[:, 0]  # WHAM! noise is two-channel: the first
        if len(noise) < longest:
            try:
                noise = extend_noise(noise, longest)
            except ValueError as error:
                raise LibriMixError(f"{job.wham / row.noise}: {error} (mixture {row.mixture_id}, {row.where})") from None
        signals.append(noise)
        gains.append(row.noise_gain)
    scaled = transform(signals, gains, job.rate)
    name = f"{row.mixture_id}.wav"
    n_speakers = len(row.sources)
    lengths, clipped = [], 0
    for mode, split_dir in job.split_dirs:
        fitted = fit_lengths(scaled, mode)
        outputs = {f"s{i}": x for i, x in enumerate(fitted[:n_speakers], start=1)}
        outputs["mix"] = mix(fitted[:n_speakers])  # mix_clean
        if job.wham is not None:
            outputs["noise"] = fitted[-1]
            variants = {"mix_both": fitted, "mix_single": [fitted[0], fitted[-1]]}
            outputs.update({variant: mix(variants[variant]) for variant in job.noisy})
        clipped += sum(write_pcm16(split_dir / folder / name, x, job.rate) > 0 for folder, x in outputs.items())
        lengths.append(len(fitted[0]))
    return lengths, clipped


# --------------------------------------------------------------------------- the stage


def run_librimix(params: Params, out_dir: Path, workers: int | None = None) -> None:
    """The stage for `mix.recipe: librimix`: every split and mode, written atomically.

    All metadata is read and every listed file checked before any audio is decoded, and the
    output appears only when complete: a missing flac or noise leaves nothing half-made.
    """
    cfg, rate = params.mix, params.corpus.sample_rate
    assert cfg.recipe == "librimix" and cfg.librimix_metadata and cfg.librispeech_root  # validated by MixConfig
    librispeech = Path(cfg.librispeech_root)
    wham = Path(cfg.wham_root) if cfg.librimix_noisy and cfg.wham_root else None
    for key, root in (("librispeech_root", librispeech), ("wham_root", wham)):
        if root is not None and not root.is_dir():
            raise LibriMixError(f"mix.{key} {root} is not a folder")
    metadata = {split: read_metadata(cfg.librimix_metadata, cfg.n_speakers, split) for split in SPLITS}
    missing = [m for split in SPLITS for m in _missing_files(metadata[split], librispeech, wham)]
    if missing:
        more = f"; {len(missing) - 1} more listed file(s) are missing too" if len(missing) > 1 else ""
        root_hint = ("mix.wham_root must hold WHAM! noise's tr/, cv/, tt/" if "(noise_path" in missing[0] else
                     "mix.librispeech_root must hold LibriSpeech's train-clean-100/, dev-clean/, test-clean/")
        raise LibriMixError(f"file not found: {missing[0]}{more} ({root_hint})")
    dataset = f"Libri{cfg.n_speakers}Mix"
    summary: dict[str, Any] = {"recipe": "librimix", "dataset": dataset, "sample_rate": rate,
                               "variants": ["mix_clean", *cfg.librimix_noisy], "mix": params_to_dict(cfg),
                               "metadata": _digests(cfg.librimix_metadata, cfg.n_speakers), "splits": {}}
    with atomic_dir(out_dir) as staging:
        for split in SPLITS:
            summary["splits"][split] = _mix_split(metadata[split], split, staging, params, librispeech, wham, workers)
        write_json(staging / "summary.json", summary)


def _mix_split(rows: list[LibriMixRow], split: str, staging: Path, params: Params, librispeech: Path,
               wham: Path | None, workers: int | None) -> dict[str, Any]:
    """Write one split's wavs for every mode and a mixtures.csv per mode; returns its summary."""
    cfg, rate = params.mix, params.corpus.sample_rate
    split_dirs = tuple((mode, staging / mode / split) for mode in cfg.modes)
    folders = [f"s{i}" for i in range(1, cfg.n_speakers + 1)] + ["mix"]
    folders += ["noise", *cfg.librimix_noisy] if wham is not None else []
    for _, split_dir in split_dirs:
        for folder in folders:
            (split_dir / folder).mkdir(parents=True)
    jobs = [_Job(row=row, librispeech=librispeech, wham=wham, noisy=cfg.librimix_noisy, split_dirs=split_dirs,
                 rate=rate) for row in rows]
    log.info("%s %s (%s): %d mixtures, modes %s", f"Libri{cfg.n_speakers}Mix", SUBSETS[split], split, len(jobs),
             ", ".join(cfg.modes))
    results = parallel_map(_build_and_write, jobs, f"librimix {split}", workers)
    clipped = sum(count for _, count in results)
    if clipped:  # soundfile clips silently in the reference; here it is at least said
        log.warning("split %s: %d written file(s) had samples beyond full scale, clipped as soundfile does",
                    split, clipped)
    summary: dict[str, Any] = {"clipped_files": clipped}
    for m, (mode, split_dir) in enumerate(split_dirs):
        table = pd.DataFrame([_csv_row(row, lengths[m], rate, wham is not None)
                              for row, (lengths, _) in zip(rows, results)])
        table.to_csv(split_dir / "mixtures.csv", index=False)
        summary[mode] = {"mixtures": len(table), "hours": round(float(table["duration"].sum()) / 3600, 6)}
    return summary


def _csv_row(row: LibriMixRow, n_samples: int, rate: int, noisy: bool) -> dict[str, Any]:
    """mixtures.csv: the columns the features stage and the report read (name; sex_i, kind_i, ...)."""
    out: dict[str, Any] = {"name": f"{row.mixture_id}.wav", "n_samples": n_samples, "duration": n_samples / rate,
                           "mixture_ID": row.mixture_id}
    for i, (path, gain, speaker, sex) in enumerate(zip(row.sources, row.gains, row.speakers, row.sexes), start=1):
        out.update({f"utterance_{i}": PurePosixPath(path).stem, f"gain_linear_{i}": gain, f"speaker_{i}": speaker,
                    f"sex_{i}": sex, f"language_{i}": "en", f"kind_{i}": "real", f"source_{i}": "librispeech",
                    f"group_{i}": speaker})
    if noisy:
        out.update({"noise": row.noise, "noise_gain_linear": row.noise_gain})
    return out


def _digests(folder: str, n_speakers: int) -> dict[str, str]:
    """sha256 of every metadata file read, by name: which LibriMix release built the data."""
    paths = [p for split in SPLITS for p in metadata_paths(folder, n_speakers, split)]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
