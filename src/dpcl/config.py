"""params.yaml -> frozen, validated dataclasses, read once per stage.

Why a hand-written loader rather than free dicts: a misspelt key in a research pipeline
silently falls back to a default and wastes a day of compute (nanoGPT #64, asteroid #138).
Here every key is declared once, with its type and default, in the dataclasses below; an
unknown key, a wrong type or an impossible value stops the run with a message that names
the key (``mix.counts.tt: must be >= 1, got 0``) and, for typos, the closest valid name.

The defaults below are the single source of truth for the code; params.yaml states the
values a run uses. Profiles (``profiles/*.yaml``) are partial files deep-merged on top.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml

from dpcl.errors import DpclError


class ConfigError(DpclError, ValueError):
    """A params file is wrong; the message names the offending key."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.detail = message
        super().__init__(f"{key}: {message}" if key else message)


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(key, message)


def _unknown_choice(given: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(given), list(allowed), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown value {given!r}{hint} (allowed: {', '.join(allowed)})"


# --------------------------------------------------------------------------- sections

CORPUS_SOURCES = ("fillets_cs", "fillets_nl", "klettres", "ktuberling", "espeak", "flite", "folder", "wsj0")


@dataclasses.dataclass(frozen=True)
class SynthesisConfig:
    """Synthetic voices: which ones, and what they say (sentences drawn from `fortunes`)."""

    espeak_voices: tuple[str, ...] = ("m1", "m3", "m7", "f1", "f2", "f4")
    flite_voices: tuple[str, ...] = ("awb", "rms", "slt", "kal")
    # espeak-ng speaking rate in words per minute; its default (175) is fast for separation.
    espeak_speed: int = 150

    def __post_init__(self) -> None:
        _require(80 <= self.espeak_speed <= 450, "espeak_speed", f"must be in [80, 450], got {self.espeak_speed}")


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
    """Stage `corpus`: build speech-by-speaker from open sources or a user's corpus."""

    sample_rate: int = 8000
    sources: tuple[str, ...] = ("fillets_cs", "fillets_nl", "klettres", "ktuberling", "espeak", "flite")
    # Root of a folder-per-speaker corpus (LibriSpeech layout included), used by source `folder`.
    folder_root: str | None = None
    # Root of WSJ0 (the folder holding wsj0/), used by source `wsj0`.
    wsj0_root: str | None = None
    # Where downloaded Debian packages are kept between runs (not a pipeline output).
    download_dir: str = "data/external"
    min_utterance_s: float = 2.0
    max_utterance_s: float = 6.0
    max_utterances_per_speaker: int = 60
    # Speakers with fewer utterances are dropped (too little to mix without repeats).
    min_utterances_per_speaker: int = 6
    # Speakers held out for the test split. Empty: draw `n_test_speakers` with the seed.
    test_speakers: tuple[str, ...] = ()
    n_test_speakers: int = 4
    # Share of each training speaker's utterances set aside for validation (WSJ0-2mix `cv`).
    validation_fraction: float = 0.15
    synthesis: SynthesisConfig = SynthesisConfig()
    seed: int = 0

    def __post_init__(self) -> None:
        _require(self.sample_rate in (8000, 16000), "sample_rate", f"must be 8000 or 16000, got {self.sample_rate}")
        _require(len(self.sources) > 0, "sources", "must name at least one source")
        for name in self.sources:
            _require(name in CORPUS_SOURCES, "sources", _unknown_choice(name, CORPUS_SOURCES))
        _require(len(set(self.sources)) == len(self.sources), "sources", "lists a source twice")
        _require("folder" not in self.sources or bool(self.folder_root), "folder_root",
                 "source `folder` needs folder_root")
        _require("wsj0" not in self.sources or bool(self.wsj0_root), "wsj0_root", "source `wsj0` needs wsj0_root")
        _require(0.5 <= self.min_utterance_s < self.max_utterance_s, "min_utterance_s",
                 f"must be >= 0.5 and below max_utterance_s ({self.max_utterance_s}), got {self.min_utterance_s}")
        _require(self.max_utterances_per_speaker >= self.min_utterances_per_speaker >= 2,
                 "min_utterances_per_speaker",
                 f"must be >= 2 and <= max_utterances_per_speaker, got {self.min_utterances_per_speaker}")
        _require(self.n_test_speakers >= 2 or len(self.test_speakers) >= 2, "n_test_speakers",
                 "the test split needs at least 2 speakers to mix")
        _require(0.0 < self.validation_fraction < 0.5, "validation_fraction",
                 f"must be in (0, 0.5), got {self.validation_fraction}")


@dataclasses.dataclass(frozen=True)
class SplitCounts:
    """Mixtures per split, named as in WSJ0-2mix."""

    tr: int = 20000
    cv: int = 5000
    tt: int = 3000

    def __post_init__(self) -> None:
        for split in ("tr", "cv", "tt"):
            value = getattr(self, split)
            _require(value >= 1, split, f"must be >= 1, got {value}")


@dataclasses.dataclass(frozen=True)
class MixConfig:
    """Stage `mix`: the WSJ0-2mix recipe (DESIGN.md section 4)."""

    n_speakers: int = 2
    modes: tuple[Literal["min", "max"], ...] = ("min",)
    counts: SplitCounts = SplitCounts()
    # Gain pair (+x, -x) dB with x ~ U[0, max_gain_db]; 2.5 dB gives WSJ0-2mix's 0-5 dB spread.
    max_gain_db: float = 2.5
    # Peak of mix, s1 and s2 after the common gain.
    peak: float = 0.9
    # Folder with official lists mix_<n>_spk_{tr,cv,tt}.txt. Null: draw lists from the corpus.
    official_lists: str | None = None
    # Folder with official activlev_*.txt tables (used with official_lists).
    official_activlev: str | None = None
    # Root the official lists' paths are relative to (the folder holding wsj0/).
    wsj0_root: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _require(2 <= self.n_speakers <= 4, "n_speakers", f"must be 2, 3 or 4, got {self.n_speakers}")
        _require(len(self.modes) > 0 and len(set(self.modes)) == len(self.modes), "modes",
                 f"must list min and/or max once each, got {list(self.modes)}")
        _require(0.0 <= self.max_gain_db <= 20.0, "max_gain_db", f"must be in [0, 20], got {self.max_gain_db}")
        _require(0.0 < self.peak < 1.0, "peak", f"must be in (0, 1), got {self.peak}")
        if self.official_lists:
            _require(bool(self.official_activlev) and bool(self.wsj0_root), "official_lists",
                     "needs official_activlev and wsj0_root as well")


@dataclasses.dataclass(frozen=True)
class FeaturesConfig:
    """Stage `features`: STFT front end of DPCL (DESIGN.md section 3)."""

    mode: Literal["min", "max"] = "min"
    n_fft: int = 256
    hop_length: int = 64
    window: Literal["sqrt_hann", "hann"] = "sqrt_hann"
    # Bins this far below the utterance's loudest bin get weight 0 in the loss.
    silence_db: float = 40.0
    # Floor inside the log so digital silence stays finite.
    log_floor: float = 1e-8

    def __post_init__(self) -> None:
        _require(self.n_fft >= 16 and self.n_fft & (self.n_fft - 1) == 0, "n_fft",
                 f"must be a power of two >= 16, got {self.n_fft}")
        _require(0 < self.hop_length <= self.n_fft, "hop_length",
                 f"must be in (0, n_fft={self.n_fft}], got {self.hop_length}")
        _require(self.silence_db > 0, "silence_db", f"must be > 0, got {self.silence_db}")
        _require(0 < self.log_floor < 1e-2, "log_floor", f"must be in (0, 0.01), got {self.log_floor}")

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1


@dataclasses.dataclass(frozen=True)
class Params:
    """Everything params.yaml may say; one section per pipeline stage."""

    corpus: CorpusConfig = CorpusConfig()
    mix: MixConfig = MixConfig()
    features: FeaturesConfig = FeaturesConfig()

    def __post_init__(self) -> None:
        _require(self.features.mode in self.mix.modes, "features.mode",
                 f"{self.features.mode!r} is not among mix.modes {list(self.mix.modes)}")


# --------------------------------------------------------------------------- loading


def load_params(paths: Sequence[str | Path] = ("params.yaml",)) -> Params:
    """Read one or more params files (later ones deep-merged over earlier ones) and validate."""
    merged: dict[str, Any] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ConfigError("", f"params file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError("", f"{path} is not valid YAML: {error}") from None
        if not isinstance(data, dict):
            raise ConfigError("", f"{path} must hold a mapping of sections, got {type(data).__name__}")
        merged = deep_merge(merged, data)
    return params_from_dict(merged)


def params_from_dict(data: Mapping[str, Any]) -> Params:
    """Validate an already-parsed mapping (Snakemake's `config`, a test's dict)."""
    return _build(Params, data, "")


def params_to_dict(params: Any) -> dict[str, Any]:
    """Plain, YAML-safe dict of a config object: saved beside results and inside checkpoints."""
    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple):
            return [convert(v) for v in value]
        return value
    return convert(params)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge mappings recursively; scalars and lists in `override` replace those in `base`."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _build(cls: type, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(prefix.rstrip("."), f"must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{prefix}{key}", f"unknown key{hint} (allowed: {', '.join(fields)})")
    values = {key: _coerce(hints[key], data[key], f"{prefix}{key}") for key in data}
    try:
        return cls(**values)
    except ConfigError as error:
        raise ConfigError(f"{prefix}{error.key}", error.detail) from None


def _coerce(hint: Any, value: Any, key: str) -> Any:
    """Check `value` against a type hint; convert lists to tuples and ints to floats."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(key, _unknown_choice(value, [str(a) for a in args]))
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"must be a list, got {value!r}")
        return tuple(_coerce(args[0], item, f"{key}[{i}]") for i, item in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"config type {hint!r} of {key} is not supported")  # a bug in this file
