"""Stage `separate` and the `separate` user command: mixtures in, one waveform per source out.

Methods:
    dpcl        Deep Clustering: embeddings from the model, k-means on the active bins, binary
                masks (dpcl.masks.kmeans_masks, settings in params `separate`);
    dpcl-spectral  the same embeddings clustered by spectral clustering, low-rank (dpcl.spectral);
    spectral    classical spectral clustering of hand-made bin features: no model (params `spectral`);
    <baseline>  a neuron-model mask network (any run name, e.g. `unipolar_sigmoid-pit`): the mask
                of source c is the network's output channel c;
    ibm, irm    oracles: ideal binary / ratio masks from the split's reference sources s1..sC.
Every method ends the same way: masks times the mixture's STFT, inverse STFT with the mixture's
phase (dpcl.masks.apply_masks). The network sees the whole utterance at once (no chunking).

Stage output (`out_dir`), written inside `atomic_dir`:
    s1/<name>.wav ... sC/<name>.wav   the estimates, under the mixture's own file name
    example.npz                       masks and features of the first mixture of mixtures.csv
    summary.json                      counts, seconds, real-time factor and its breakdown
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dpcl.atomic import atomic_dir, writable_problem, write_json
from dpcl.audio import INT16_SCALE, AudioError, read_audio, resample, write_wav
from dpcl.config import FeaturesConfig, Params, SeparateConfig, SpectralConfig, params_from_dict
from dpcl.errors import DpclError
from dpcl.features import log_magnitude as features_log_magnitude
from dpcl.features import mixture_names, silence_weights, spread_subset
from dpcl.masks import ORACLE_MASKS, apply_masks, kmeans_masks, oracle_masks
from dpcl.models.build import model_from_payload
from dpcl.spectral import low_rank_njw_embedding, scatter_rows, spectral_rows
from dpcl.stft import Stft

log = logging.getLogger(__name__)

MODEL_KINDS = ("dpcl", "baseline")
DPCL_METHODS = ("dpcl", "dpcl-spectral")  # the methods that run a DPCL model, and how they cluster
MODEL_FREE_METHODS = ("spectral",)
RESCALE_PEAK = 0.9  # an estimate that would clip in 16 bits is scaled to this peak (WSJ0-2mix's)


@dataclass
class Separation:
    """One mixture separated, with what the report plots. `estimates` (C, n) as long as the input."""

    estimates: np.ndarray  # (C, n_samples)
    masks: np.ndarray  # (C, T, F)
    logmag: np.ndarray  # (T, F) natural log of |STFT(mix)|, floored as in features; not normalised
    active: np.ndarray  # (T, F) bool: within silence_db of the loudest bin
    embeddings: np.ndarray | None = None  # (T*F, D), DPCL only
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step


def log_magnitude(mix: np.ndarray, stft: Stft, cfg: FeaturesConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(complex STFT (T, F), logmag (T, F), active (T, F) bool) of a mixture, as in features.

    The logmag is `features.log_magnitude`, the very function training features were made with.
    """
    spec = stft.analyse(mix)  # (T, F) complex
    magnitude = np.abs(spec)
    logmag = features_log_magnitude(magnitude, cfg.log_floor)
    active = silence_weights(magnitude, cfg.silence_db).astype(bool)
    return spec, logmag, active


def read_model_payload(path: str | Path) -> dict[str, Any]:
    """Check that `path` is a dpcl model file (as training writes it) without running its pickle code.

    `torch.load(weights_only=True)` only rebuilds tensors and plain containers, so a foreign or
    hostile file is refused, and the payload it returns is all `Separator` needs.
    """
    path = Path(path)
    if path.is_dir():  # a training's output folder (data/models/dpcl) holds its model.pt
        if not (path / "model.pt").is_file():
            raise DpclError(f"{path} is a folder without a model.pt: give a training's folder or its model.pt")
        path = path / "model.pt"
    if not path.is_file():
        raise DpclError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch raise many types for a foreign file
        raise DpclError(f"{path} is not a dpcl model file: torch.load refused it ({type(error).__name__})") from None
    missing = {"state_dict", "params", "kind"} - set(payload) if isinstance(payload, dict) else {"everything"}
    if missing:
        raise DpclError(f"{path} is not a dpcl model file: it lacks {', '.join(sorted(missing))} "
                        "(expected the model.pt a train stage writes)")
    if payload["kind"] not in MODEL_KINDS:
        raise DpclError(f"{path}: unknown model kind {payload['kind']!r} (allowed: {', '.join(MODEL_KINDS)})")
    return payload


def read_stats(path: str | Path, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin (mean, std) of the training logmag from the features stage's stats.json."""
    path = Path(path)
    if not path.is_file():
        raise DpclError(f"statistics file not found: {path} (the features stage writes stats.json)")
    try:
        stats = json.loads(path.read_text())
    except ValueError as error:
        raise DpclError(f"{path} is not a features stats.json: {error}") from None
    return _stats_arrays(stats, str(path), n_bins)


def _stats_arrays(stats: Any, path: str, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) from a stats mapping, checked against the model's number of bins."""
    try:
        mean = np.asarray(stats["mean"], dtype=np.float32)
        std = np.asarray(stats["std"], dtype=np.float32)
    except (ValueError, KeyError, TypeError) as error:
        raise DpclError(f"{path} is not a features stats.json (needs lists `mean` and `std`): {error}") from None
    if mean.shape != (n_bins,) or std.shape != (n_bins,):
        raise DpclError(f"{path} holds statistics of {mean.size} bins, the model expects {n_bins}")
    if not np.all(std > 0):
        raise DpclError(f"{path}: every std must be > 0")
    return mean, std


class Separator:
    """A trained DPCL or baseline model, ready to separate whole utterances.

    Everything that shapes the input (sample rate, STFT, log floor, silence threshold, number of
    sources) comes from the params saved in the model file, never from today's params.yaml.
    `config` (k-means settings) defaults to the model's own `separate` section.
    """

    def __init__(self, model_path: str | Path, stats_path: str | Path | None, config: SeparateConfig | None = None,
                 device: str | torch.device = "cpu", clustering: str = "kmeans") -> None:
        if clustering not in ("kmeans", "spectral"):
            raise ValueError(f"unknown clustering {clustering!r} (allowed: kmeans, spectral)")
        self.clustering = clustering
        payload = read_model_payload(model_path)  # checked and loaded once, without running pickle code
        try:
            self.model = model_from_payload(payload, device)
        except DpclError:
            raise
        except Exception as error:  # a state dict that does not fit the network its params describe
            raise DpclError(f"{model_path} does not load as a {payload['kind']} model: {error}") from None
        self.payload = payload
        self.kind: str = payload["kind"]
        self.params: Params = params_from_dict(payload["params"])
        self.config = config or self.params.separate
        if clustering == "spectral":
            check_spectral_settings(self.config)
        self.device = torch.device(device)
        self.features = self.params.features
        self.stft = Stft.from_config(self.features)
        self.sample_rate = self.params.corpus.sample_rate
        self.n_sources = self.params.mix.n_speakers
        if stats_path is None and "stats" not in payload:
            raise DpclError(f"{model_path} carries no feature statistics: pass the features' stats.json")
        self.mean, self.std = (read_stats(stats_path, self.features.n_bins) if stats_path is not None
                               else _stats_arrays(payload["stats"], f"{model_path} (embedded statistics)",
                                                  self.features.n_bins))

    def run(self, mix: np.ndarray, rate: int) -> Separation:
        """Separate one mono mixture at the model's rate; returns estimates, masks and timings."""
        mix, spec, logmag, active, timings = analyse(mix, rate, self.sample_rate, self.stft, self.features)

        started = time.perf_counter()
        x = torch.from_numpy((logmag - self.mean) / self.std)[None].to(self.device)  # (1, T, F)
        with torch.inference_mode():
            output = self.model(x)[0].float().cpu().numpy()  # dpcl: (T*F, D); baseline: (T, F, C)
        timings["network"] = time.perf_counter() - started

        started = time.perf_counter()
        embeddings = None
        if self.kind == "dpcl":
            embeddings = output
            cfg = self.config
            points = embeddings
            if self.clustering == "spectral":  # k-means on the rows of the affinity's leading eigenvectors
                points = scatter_rows(low_rank_njw_embedding(embeddings[active.reshape(-1)], self.n_sources), active)
            masks = kmeans_masks(points, active, self.n_sources, cfg.seed, cfg.n_init, silent_bins=cfg.silent_bins,
                                 soft=cfg.soft, alpha=cfg.soft_alpha,
                                 magnitude=np.abs(spec) if cfg.silent_bins == "louder" else None)
        else:
            masks = np.ascontiguousarray(np.moveaxis(output, -1, 0))  # (C, T, F): source c = channel c
        timings["masks"] = time.perf_counter() - started

        started = time.perf_counter()
        estimates = apply_masks(spec, masks, self.stft, len(mix))
        timings["istft"] = time.perf_counter() - started
        return Separation(estimates, masks, logmag, active, embeddings, timings)

    def separate(self, mix: np.ndarray, rate: int) -> np.ndarray:
        """Estimates (C, n_samples) of one mono mixture at the model's sample rate."""
        return self.run(mix, rate).estimates


def check_mono(mix: np.ndarray, rate: int, expected_rate: int) -> np.ndarray:
    """The mixture as a non-empty mono array at the expected rate, or an AudioError saying why."""
    mix = np.asarray(mix)
    if mix.ndim != 1 or mix.size == 0:
        raise AudioError(f"expected a non-empty mono signal (n_samples,), got shape {mix.shape}")
    if rate != expected_rate:
        raise AudioError(f"the mixture is at {rate} Hz, the separator works at {expected_rate} Hz "
                         "(separate_file resamples)")
    return mix


def analyse(mix: np.ndarray, rate: int, expected_rate: int, stft: Stft,
            features: FeaturesConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, float]]:
    """The first step of every separator: the checked mixture, its STFT, log-magnitude and active
    bins, and the timings dict with the STFT's seconds (each separator adds its own steps)."""
    mix = check_mono(mix, rate, expected_rate)
    started = time.perf_counter()
    spec, logmag, active = log_magnitude(mix, stft, features)
    return mix, spec, logmag, active, {"stft": time.perf_counter() - started}


def check_spectral_settings(cfg: SeparateConfig) -> None:
    """Spectral rows exist for active bins only (silent bins get zero rows), so `nearest`, which
    places silent bins by their distance to the clusters, would put every one of them in one
    source. Soft masks are fine: they weigh active bins only, silent bins follow their rule."""
    if cfg.silent_bins == "nearest":
        raise DpclError("spectral clustering places active bins only: use separate.silent_bins both, "
                        "louder or none with the spectral methods")


class SpectralSeparator:
    """Classical spectral clustering (dpcl.spectral): no model, the same STFT, masks and resynthesis.

    `run` has Separator's signature, so the stage, the report's example and the cost run treat
    it like any other method. `affinity` overrides params `spectral.affinity` (the cost run
    measures both).
    """

    kind = "spectral"

    def __init__(self, params: Params, affinity: str | None = None) -> None:
        self.params = params
        self.features = params.features
        self.spectral: SpectralConfig = params.spectral
        self.affinity = affinity or params.spectral.affinity
        self.config = params.separate
        check_spectral_settings(self.config)
        self.stft = Stft.from_config(self.features)
        self.sample_rate = params.corpus.sample_rate
        self.n_sources = params.mix.n_speakers
        self.payload: dict[str, Any] = {"name": f"spectral-{self.affinity}"}

    def run(self, mix: np.ndarray, rate: int) -> Separation:
        """Separate one mono mixture; AffinityTooLarge if a dense affinity would break the memory budget."""
        mix, spec, logmag, active, timings = analyse(mix, rate, self.sample_rate, self.stft, self.features)
        started = time.perf_counter()
        rows = spectral_rows(logmag, active, self.n_sources, self.spectral, self.affinity)
        timings["affinity+eigen"] = time.perf_counter() - started
        started = time.perf_counter()
        cfg = self.config
        masks = kmeans_masks(scatter_rows(rows, active), active, self.n_sources, self.spectral.seed, cfg.n_init,
                             silent_bins=cfg.silent_bins, magnitude=np.abs(spec) if cfg.silent_bins == "louder" else None)
        timings["masks"] = time.perf_counter() - started
        started = time.perf_counter()
        estimates = apply_masks(spec, masks, self.stft, len(mix))
        timings["istft"] = time.perf_counter() - started
        return Separation(estimates, masks, logmag, active, None, timings)


def oracle_separation(mix: np.ndarray, sources: list[np.ndarray], kind: str, stft: Stft,
                      cfg: FeaturesConfig) -> Separation:
    """Separate with the ideal binary or ratio mask of the reference `sources` (same length as `mix`)."""
    started = time.perf_counter()
    spec, logmag, active = log_magnitude(mix, stft, cfg)
    source_mags = np.stack([np.abs(stft.analyse(s)) for s in sources])  # (C, T, F)
    stft_seconds = time.perf_counter() - started
    started = time.perf_counter()
    masks = oracle_masks(source_mags, kind)
    mask_seconds = time.perf_counter() - started
    started = time.perf_counter()
    estimates = apply_masks(spec, masks, stft, len(mix))
    timings = {"stft": stft_seconds, "masks": mask_seconds, "istft": time.perf_counter() - started}
    return Separation(estimates, masks, logmag, active, None, timings)


def fit_int16(estimate: np.ndarray, peak: float = RESCALE_PEAK) -> tuple[np.ndarray, bool]:
    """The estimate, scaled to `peak` only if writing it as 16-bit PCM would clip; (samples, rescaled).

    Masked estimates are not bounded by [-1, 1) (a mask does not limit the waveform's peak), but
    scale does not matter to scoring: mir_eval's SDR allows a 512-tap distortion filter (a gain
    included) and SI-SDR is scale-invariant. Estimates that fit keep their level untouched.
    """
    scaled = np.round(np.asarray(estimate, dtype=np.float64) * INT16_SCALE)
    if scaled.size == 0 or (scaled.max() <= INT16_SCALE - 1 and scaled.min() >= -INT16_SCALE):
        return estimate, False
    return estimate * (peak / float(np.max(np.abs(estimate)))), True


# --------------------------------------------------------------------------- the stage


def _separate_one(method: str, split_dir: Path, staging: Path, params: Params,
                  engine: Separator | SpectralSeparator | None, name: str, example: bool) -> dict[str, Any]:
    """Read, separate and write one mixture; returns its record (and the report's arrays if `example`)."""
    rate, n_sources = params.corpus.sample_rate, params.mix.n_speakers
    mix, _ = read_audio(split_dir / "mix" / name, expected_rate=rate)
    sources = None
    if engine is None or example:  # the oracles need the references; the example needs the IBM target
        sources = [read_audio(split_dir / f"s{c + 1}" / name, expected_rate=rate)[0] for c in range(n_sources)]
        for c, source in enumerate(sources):
            if len(source) != len(mix):
                raise AudioError(f"{split_dir / f's{c + 1}' / name} has {len(source)} samples, the mixture {len(mix)}")
    stft = engine.stft if engine is not None else Stft.from_config(params.features)
    if engine is None:
        result = oracle_separation(mix, sources, method, stft, params.features)
    else:
        result = engine.run(mix, rate)
    rescaled = False
    for c, estimate in enumerate(result.estimates):
        estimate, scaled = fit_int16(estimate)
        rescaled |= scaled
        write_wav(staging / f"s{c + 1}" / name, estimate, rate)
    record: dict[str, Any] = {"name": name, "seconds": len(mix) / rate, "rescaled": rescaled, "timings": result.timings}
    if example:
        source_mags = np.stack([np.abs(stft.analyse(s)) for s in sources])  # (C, T, F)
        arrays = {"name": np.array(name), "method": np.array(method), "logmag": result.logmag,
                  "masks": result.masks.astype(np.float32), "active": result.active,
                  "ibm_target": np.argmax(source_mags, axis=0).astype(np.uint8),
                  "sample_rate": np.array(rate), "n_fft": np.array(stft.n_fft), "hop_length": np.array(stft.hop_length)}
        if result.embeddings is not None:
            arrays["embeddings"] = result.embeddings.astype(np.float32)
        record["example"] = arrays
    return record


def run_separate(params: Params, method: str, mixtures_dir: Path, model_path: Path | None, stats_path: Path | None,
                 out_dir: Path, device: str = "cpu") -> dict[str, Any]:
    """The stage: separate every mixture of one split (`mixtures_dir`, e.g. data/mix/min/tt).

    `method` is `ibm` or `irm` (no model: the split's s1..sC are the references), `spectral` (no
    model; only `spectral.max_mixtures` mixtures spread over the split, as `dpcl evaluate --limit`
    scores them: dense affinities are O(N^2)), or the name of a model run (`dpcl` or
    `dpcl-spectral` with the DPCL model, or a baseline run) with `model_path` and the features
    `stats_path`.
    Estimates are written as 16-bit WAV at their own level; one that would clip is scaled to peak
    0.9 (see `fit_int16`: SDR and SI-SDR do not see the scale) and listed in summary.json.

    One process, mixtures in turn: the torch thread count is the caller's (the CLI's --threads;
    1 is fastest for a batch of one utterance). Processes were measured and are not used: on
    2 cores already running two Snakemake jobs, 2 workers took 1.8x (DPCL) and 7x (IBM) the
    time of one, and Snakemake already runs the separate jobs of the methods side by side.
    """
    mixtures_dir, out_dir = Path(mixtures_dir), Path(out_dir)
    model_free = method in ORACLE_MASKS or method in MODEL_FREE_METHODS
    if model_free and model_path is not None:
        log.warning("method %s uses no model: %s is not used", method, model_path)
    if not model_free and model_path is None:
        raise DpclError(f"method {method!r} needs a model file "
                        f"(methods without one: {', '.join(ORACLE_MASKS + MODEL_FREE_METHODS)})")
    names = mixture_names(mixtures_dir.parent.parent, mixtures_dir.parent.name, mixtures_dir.name)
    engine: Separator | SpectralSeparator | None = None
    if method in MODEL_FREE_METHODS:
        engine = SpectralSeparator(params)
        if params.spectral.max_mixtures:
            names = spread_subset(names, params.spectral.max_mixtures)
    elif method not in ORACLE_MASKS:
        clustering = "spectral" if method == "dpcl-spectral" else "kmeans"
        engine = Separator(model_path, stats_path, params.separate, device, clustering=clustering)
        _check_model(engine, method, params)
    started = time.perf_counter()
    with atomic_dir(out_dir) as staging:
        for c in range(params.mix.n_speakers):
            (staging / f"s{c + 1}").mkdir()
        records = []
        for i, name in enumerate(tqdm(names, desc=f"separate {method}", unit="mix", mininterval=2)):
            record = _separate_one(method, mixtures_dir, staging, params, engine, name, example=i == 0)
            if "example" in record:
                np.savez_compressed(staging / "example.npz", **record.pop("example"))
            records.append(record)
        summary = _summary(method, records, time.perf_counter() - started, engine)
        write_json(staging / "summary.json", summary)
    return summary


def _check_model(engine: Separator, method: str, params: Params) -> None:
    """The model must fit the method and the split: its kind, rate and number of sources."""
    if (method in DPCL_METHODS) != (engine.kind == "dpcl"):
        raise DpclError(f"method {method!r} was given a {engine.kind} model ({engine.payload.get('name')})")
    if engine.sample_rate != params.corpus.sample_rate:
        raise DpclError(f"the model works at {engine.sample_rate} Hz, "
                        f"the mixtures are at {params.corpus.sample_rate} Hz")
    if engine.n_sources != params.mix.n_speakers:
        raise DpclError(f"the model separates {engine.n_sources} sources, the mixtures hold {params.mix.n_speakers}")


def _summary(method: str, records: list[dict[str, Any]], wall: float,
             engine: Separator | SpectralSeparator | None) -> dict[str, Any]:
    audio = sum(r["seconds"] for r in records)
    steps = sorted({k for r in records for k in r["timings"]})
    compute = {k: sum(r["timings"].get(k, 0.0) for r in records) for k in steps}
    rescaled = [r["name"] for r in records if r["rescaled"]]
    if rescaled:
        log.warning("%d of %d mixtures had an estimate scaled to peak %.1f to fit 16 bits", len(rescaled),
                    len(records), RESCALE_PEAK)
    return {"method": method, "model": None if engine is None else engine.payload.get("name"),
            "mixtures": len(records), "audio_seconds": round(audio, 3), "wall_seconds": round(wall, 3),
            "rtf": round(sum(compute.values()) / audio, 5),
            "rtf_by_step": {k: round(v / audio, 5) for k, v in compute.items()},
            "torch_threads": torch.get_num_threads(), "rescaled": rescaled}


# --------------------------------------------------------------------------- the user command


# What `dpcl separate FOLDER` picks up: the formats libsndfile reads that recordings come in.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def estimate_paths(in_path: Path, out_dir: Path, n_sources: int) -> list[Path]:
    """`<out_dir>/<stem>_s1.wav` ...: where the estimates of `in_path` go."""
    return [out_dir / f"{in_path.stem}_s{c + 1}.wav" for c in range(n_sources)]


def check_output_folder(out_dir: Path, targets: list[Path]) -> None:
    """Refuse, before any work, an --out that is a file, cannot be written, or whose estimate
    names are taken by folders: a traceback after minutes of separation helps nobody."""
    problem = writable_problem(out_dir, "folder")
    if problem:
        raise DpclError(f"--out: {problem}")
    for target in targets:
        if target.is_dir():
            raise DpclError(f"{target} exists and is a folder: move it, or choose another --out")


def _write_estimates(estimates: list[np.ndarray], targets: list[Path], rate: int, source: Path) -> None:
    """Write every estimate or none: each is staged beside its target, then all are renamed."""
    staged = []
    try:
        for c, (estimate, target) in enumerate(zip(estimates, targets)):
            estimate, rescaled = fit_int16(estimate)
            if rescaled:
                log.warning("%s: estimate %d scaled to peak %.1f to fit 16 bits", source, c + 1, RESCALE_PEAK)
            partial = target.with_name(f".{target.name}.partial")
            write_wav(partial, estimate, rate)
            staged.append((partial, target))
        for partial, target in staged:
            partial.replace(target)
    finally:
        for partial, _ in staged:
            partial.unlink(missing_ok=True)


def separate_file(in_path: str | Path, model_path: str | Path, stats_path: str | Path | None, out_dir: str | Path,
                  config: SeparateConfig | None = None, device: str = "cpu",
                  separator: Separator | None = None) -> list[Path]:
    """Separate any sound file; writes `<out_dir>/<stem>_s1.wav` ... at the model's rate, mono.

    Any rate and channel count is accepted: channels are averaged to mono and the signal is
    resampled (polyphase) to the model's rate, each with a logged warning. An estimate that would
    clip in 16 bits is scaled to peak 0.9 (also logged). The output folder is checked before the
    work and the estimates are written all or none. Raises AudioError for a missing, unreadable
    or truncated sound file, DpclError for a file that is not a dpcl model or stats file, or an
    output that cannot be written. `separator`: one already loaded (a folder's files share it).
    """
    in_path, out_dir = Path(in_path), Path(out_dir)
    separator = separator or Separator(model_path, stats_path, config, device)
    targets = estimate_paths(in_path, out_dir, separator.n_sources)
    check_output_folder(out_dir, targets)
    samples, rate = read_audio(in_path, mono=False)  # (n, channels)
    notes = []
    if samples.shape[1] > 1:
        notes.append(f"downmixed {samples.shape[1]} channels to mono")
    mix = samples.mean(axis=1)
    if rate != separator.sample_rate:
        notes.append(f"resampled {rate} Hz to {separator.sample_rate} Hz")
        mix = resample(mix, rate, separator.sample_rate)
    if notes:
        log.warning("%s: %s (the model separates mono %d Hz audio)", in_path, ", ".join(notes), separator.sample_rate)
    estimates = separator.separate(mix, separator.sample_rate)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_estimates(list(estimates), targets, separator.sample_rate, in_path)
    return targets


@dataclass
class FolderResult:
    """What `separate_folder` did: estimates written, and each refused file with its reason."""

    written: list[Path] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)
    files: int = 0


def separate_folder(in_dir: str | Path, model_path: str | Path, stats_path: str | Path | None, out_dir: str | Path,
                    config: SeparateConfig | None = None, device: str = "cpu") -> FolderResult:
    """Separate every sound file directly in `in_dir` (AUDIO_SUFFIXES), one model load for all.

    A file that cannot be separated (unreadable, truncated) is reported and skipped, so one bad
    recording does not cost the rest; an output problem stops everything before any work.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    files = sorted(p for p in in_dir.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise DpclError(f"{in_dir} holds no sound files ({', '.join(AUDIO_SUFFIXES)})")
    separator = Separator(model_path, stats_path, config, device)
    stems = {}
    for path in files:  # a.wav and a.flac would write the same a_s1.wav
        if path.stem in stems:
            raise DpclError(f"{stems[path.stem].name} and {path.name} would both write {path.stem}_s1.wav: "
                            "rename one")
        stems[path.stem] = path
    check_output_folder(out_dir, [t for p in files for t in estimate_paths(p, out_dir, separator.n_sources)])
    result = FolderResult(files=len(files))
    for path in tqdm(files, desc="separate", unit="file"):
        try:
            result.written += separate_file(path, model_path, stats_path, out_dir, separator=separator)
        except AudioError as error:
            log.warning("skipped: %s", error)
            result.refused.append((path, str(error)))
    return result


__all__ = ["Separation", "Separator", "SpectralSeparator", "apply_masks", "fit_int16", "kmeans_masks", "log_magnitude", "oracle_masks",
           "read_model_payload", "read_stats", "run_separate", "separate_file", "separate_folder"]
