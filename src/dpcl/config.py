"""params.yaml -> frozen, validated dataclasses, read once per stage.

Why a hand-written loader rather than free dicts: a misspelt key in a research pipeline
silently falls back to a default and wastes a day of compute (nanoGPT #64, asteroid #138).
Here every key is declared once, with its type and default, in the dataclasses below; an
unknown key, a wrong type or an impossible value stops the run with a message that names
the key (``mix.counts.tt: must be >= 1, got 0``) and, for typos, the closest valid name.

Every default of a run lives in one place, params.yaml: the params files a stage reads
(params.yaml, then profiles deep-merged on top) must state every key together, and a key none
of them states stops the run with its name (`load_params`). An empty file therefore never runs
on other values than the ones a user reads in params.yaml. The dataclass defaults below serve
only code that builds `Params` itself (tests, a checkpoint's saved params); they are not the
pipeline's values and need not match params.yaml.
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

    def __reduce__(self) -> tuple:
        # Rebuilt from (key, message) when it crosses a process boundary (a worker pool): the
        # default pickling passes the one formatted string and the rebuild fails.
        return (type(self), (self.key, self.detail))


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(key, message)


def _unknown_choice(given: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(given), list(allowed), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown value {given!r}{hint} (allowed: {', '.join(allowed)})"


# --------------------------------------------------------------------------- sections

CORPUS_SOURCES = ("fillets_cs", "fillets_nl", "klettres", "ktuberling", "tuxpaint", "fotaq", "drascula",
                  "drascula_es", "codec2", "bass", "espeak", "flite", "folder", "wsj0")


@dataclasses.dataclass(frozen=True)
class SynthesisConfig:
    """Synthetic voices: which ones, and what they say (sentences drawn from `fortunes`)."""

    # espeak-ng English voice variants (files in espeak-ng-data/voices/!v): `en+m1`, ...
    espeak_voices: tuple[str, ...] = ("m1", "m3", "m7", "f1", "f2", "f4")
    # flite's built-in voices (`flite -lv`); kal is rendered with its 16 kHz twin kal16 when needed.
    flite_voices: tuple[str, ...] = ("awb", "rms", "slt", "kal")
    # espeak-ng speaking rate in words per minute; its default (175) is fast for separation.
    espeak_speed: int = 150

    def __post_init__(self) -> None:
        _require(80 <= self.espeak_speed <= 450, "espeak_speed", f"must be in [80, 450], got {self.espeak_speed}")
        for key in ("espeak_voices", "flite_voices"):
            voices = getattr(self, key)
            _require(len(set(voices)) == len(voices), key, f"lists a voice twice: {list(voices)}")
        # kal and kal16 are one speaker at two rates: both would be one person under two names.
        _require(not {"kal", "kal16"} <= set(self.flite_voices), "flite_voices",
                 "kal and kal16 are the same speaker; list one of them")


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
    # Synthetic voices may be test speakers. Off: `tt` holds real voices of known identity only
    # (the headline measures real people); a corpus of synthetic voices alone (CI) turns it on.
    synthetic_in_test: bool = False
    # Share of each training speaker's utterances set aside for validation (WSJ0-2mix `cv`).
    validation_fraction: float = 0.15
    # Keep Fish Fillets' minor roles (uncredited actors who may double the main roles) as speakers.
    # They then share one speaker group with their dub's main roles, so a dub never straddles splits.
    fillets_minor_roles: bool = False
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
        _require(len(set(self.test_speakers)) == len(self.test_speakers), "test_speakers",
                 f"lists a speaker twice: {list(self.test_speakers)}")


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
    """Stage `mix`: the WSJ0-2mix recipe (DESIGN.md section 4) or LibriMix's (src/dpcl/librimix.py)."""

    # wsj0-2mix: lists drawn from the corpus (or the official lists with wsj0_root), P.56 levels, dB
    # gains, common peak. librimix: Libri2Mix/Libri3Mix from their metadata and LibriSpeech; reads
    # neither the corpus nor counts, max_gain_db, peak and seed.
    recipe: Literal["wsj0-2mix", "librimix"] = "wsj0-2mix"
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
    # Recipe librimix: folder of libri<n>mix_{train-clean-100,dev-clean,test-clean}.csv and their
    # _info.csv (LibriMix's metadata/Libri2Mix or Libri3Mix, by n_speakers).
    librimix_metadata: str | None = None
    # Recipe librimix: folder holding LibriSpeech's train-clean-100/, dev-clean/ and test-clean/.
    librispeech_root: str | None = None
    # Recipe librimix: noisy variants written beside mix_clean (`mix/`): mix_both (every speaker +
    # noise) and/or mix_single (speaker 1 + noise), plus noise/. They need wham_root.
    librimix_noisy: tuple[Literal["mix_both", "mix_single"], ...] = ()
    # Folder holding WHAM! noise's tr/, cv/, tt/ (wham_noise), read only for librimix_noisy.
    wham_root: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _require(2 <= self.n_speakers <= 4, "n_speakers", f"must be 2, 3 or 4, got {self.n_speakers}")
        self._check_librimix()
        _require(len(self.modes) > 0 and len(set(self.modes)) == len(self.modes), "modes",
                 f"must list min and/or max once each, got {list(self.modes)}")
        _require(0.0 <= self.max_gain_db <= 20.0, "max_gain_db", f"must be in [0, 20], got {self.max_gain_db}")
        _require(0.0 < self.peak < 1.0, "peak", f"must be in (0, 1), got {self.peak}")
        if self.official_lists:
            _require(bool(self.official_activlev) and bool(self.wsj0_root), "official_lists",
                     "needs official_activlev and wsj0_root as well")

    def _check_librimix(self) -> None:
        """Recipe librimix needs its two folders; its keys elsewhere, and WHAM! noise without a
        noisy variant to use it (or the reverse), would be silently ignored: refused instead."""
        noisy = list(self.librimix_noisy)
        _require(len(set(noisy)) == len(noisy), "librimix_noisy", f"lists a variant twice: {noisy}")
        if self.recipe != "librimix":
            for key in ("librimix_metadata", "librispeech_root", "librimix_noisy", "wham_root"):
                _require(not getattr(self, key), key, f"is read only by recipe librimix (mix.recipe is "
                         f"{self.recipe!r}): set it to {'[]' if key == 'librimix_noisy' else 'null'}")
            return
        _require(self.n_speakers in (2, 3), "n_speakers",
                 f"recipe librimix has Libri2Mix and Libri3Mix metadata: must be 2 or 3, got {self.n_speakers}")
        _require(bool(self.librimix_metadata), "librimix_metadata",
                 f"recipe librimix needs the folder of libri{self.n_speakers}mix_*.csv")
        _require(bool(self.librispeech_root), "librispeech_root",
                 "recipe librimix needs the folder holding LibriSpeech's train-clean-100/, dev-clean/, test-clean/")
        _require(not self.official_lists, "official_lists",
                 "belongs to recipe wsj0-2mix; recipe librimix reads librimix_metadata (set it to null)")
        _require(not noisy or bool(self.wham_root), "librimix_noisy",
                 f"the noisy variants ({', '.join(noisy)}) need WHAM! noise: set mix.wham_root to the folder "
                 "holding wham_noise's tr/, cv/, tt/, or list none")
        _require(not self.wham_root or bool(noisy), "wham_root",
                 "is read only for noisy variants: list mix_both and/or mix_single in librimix_noisy, "
                 "or set it to null")


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
class PhaseConfig:
    """One curriculum phase: chunk length, epochs, batch size, learning rate."""

    chunk_frames: int = 100
    epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 1e-3

    def __post_init__(self) -> None:
        _require(8 <= self.chunk_frames <= 4000, "chunk_frames", f"must be in [8, 4000], got {self.chunk_frames}")
        _require(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        _require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        _require(0 < self.learning_rate < 1, "learning_rate", f"must be in (0, 1), got {self.learning_rate}")


@dataclasses.dataclass(frozen=True)
class AugmentationConfig:
    """Per-source changes to the recording chain during dynamic mixing (src/dpcl/augment.py).

    Each lever is off at its neutral value, so each can be measured on its own.
    """

    # Speed perturbation (resampling: tempo and pitch together, as sox `speed`): a factor drawn from
    # this list with `speed_probability`; a perturbed voice counts as a new speaker `<id>-sp<factor>`
    # (same group: never mixed with its own original).
    speed_factors: tuple[float, ...] = ()
    speed_probability: float = 0.0
    # Random overall level of the mixture, uniform in +-level_db dB (the features see a new gain).
    level_db: float = 0.0
    # First-order spectral tilt y[n] = x[n] - a x[n-1], a ~ U[-tilt, tilt]: a different microphone.
    tilt: float = 0.0
    # Share of sources band-limited to 300-3400 Hz like a telephone line.
    telephone_probability: float = 0.0

    def __post_init__(self) -> None:
        _require(all(0.5 <= f <= 2.0 for f in self.speed_factors), "speed_factors",
                 f"must lie in [0.5, 2.0], got {list(self.speed_factors)}")
        for key in ("speed_probability", "telephone_probability"):
            _require(0.0 <= getattr(self, key) <= 1.0, key, f"must be in [0, 1], got {getattr(self, key)}")
        _require(not self.speed_probability or self.speed_factors, "speed_probability",
                 "needs speed_factors to draw from")
        _require(0.0 <= self.level_db <= 30.0, "level_db", f"must be in [0, 30], got {self.level_db}")
        _require(0.0 <= self.tilt < 1.0, "tilt", f"must be in [0, 1), got {self.tilt}")


@dataclasses.dataclass(frozen=True)
class DynamicMixingConfig:
    """Fresh training mixtures every epoch from the corpus's `tr` utterances (src/dpcl/dynamic_mixing.py).

    The recipe of the `mix` stage (P.56 levels, +x/-x dB gains with mix.max_gain_db, common peak
    scale), with random crops and offsets, two different speaker groups per mixture, features
    computed per example. Validation stays the fixed `cv` mixtures.
    """

    enabled: bool = False
    # Share of mixtures whose two sources are both real voices (the rest hold a synthetic one,
    # when the corpus has synthetic voices at all).
    real_pair_share: float = 1.0
    augmentation: AugmentationConfig = AugmentationConfig()

    def __post_init__(self) -> None:
        _require(0.0 <= self.real_pair_share <= 1.0, "real_pair_share",
                 f"must be in [0, 1], got {self.real_pair_share}")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How a model is trained; shared by DPCL and the baselines, each with its own values."""

    # DPCL++ curriculum: 100-frame chunks, then 400-frame chunks from the best weights.
    phases: tuple[PhaseConfig, ...] = (PhaseConfig(),)
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9  # rmsprop and sgd only
    grad_clip: float = 5.0  # max global gradient norm; 0 turns clipping off
    scheduler: Literal["plateau", "none"] = "plateau"
    scheduler_factor: float = 0.5
    scheduler_patience: int = 1
    early_stopping_patience: int = 3  # epochs without a better validation loss; 0 turns it off
    max_batches_per_epoch: int = 0  # 0: the whole training split every epoch
    max_val_batches: int = 0  # 0: the whole validation split
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: bool = False  # bfloat16 autocast, CUDA only
    # Processes that prepare training batches beside the training (torch DataLoader workers); 0:
    # the training process itself. A GPU outruns one core's dynamic mixing (~4 ms an example).
    loader_workers: int = 0
    dynamic_mixing: DynamicMixingConfig = DynamicMixingConfig()
    # Which weights a phase keeps: the lowest validation `loss`, or (DPCL) the highest validation
    # SDRi on `selection_mixtures` fixed cv mixtures separated by k-means each epoch.
    selection: Literal["loss", "sdri"] = "loss"
    selection_mixtures: int = 20
    # > 0: validate, select and keep a moving average of the weights with this decay per step
    # (src/dpcl/averaging.py); 0 keeps the trained weights themselves.
    ema_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _require(len(self.phases) >= 1, "phases", "needs at least one phase")
        _require(0.0 <= self.ema_decay < 1.0, "ema_decay", f"must be in [0, 1), got {self.ema_decay}")
        _require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        _require(0 <= self.momentum < 1, "momentum", f"must be in [0, 1), got {self.momentum}")
        _require(self.grad_clip >= 0, "grad_clip", f"must be >= 0, got {self.grad_clip}")
        _require(0 < self.scheduler_factor < 1, "scheduler_factor", f"must be in (0, 1), got {self.scheduler_factor}")
        _require(self.selection_mixtures >= 1, "selection_mixtures", f"must be >= 1, got {self.selection_mixtures}")
        for key in ("scheduler_patience", "early_stopping_patience", "max_batches_per_epoch", "max_val_batches",
                    "loader_workers"):
            _require(getattr(self, key) >= 0, key, f"must be >= 0, got {getattr(self, key)}")


@dataclasses.dataclass(frozen=True)
class DpclSize:
    """Size of the BLSTM stack."""

    hidden: int = 200
    layers: int = 2
    dropout: float = 0.0

    def __post_init__(self) -> None:
        _require(self.hidden >= 1, "hidden", f"must be >= 1, got {self.hidden}")
        _require(self.layers >= 1, "layers", f"must be >= 1, got {self.layers}")
        _require(0 <= self.dropout < 1, "dropout", f"must be in [0, 1), got {self.dropout}")


@dataclasses.dataclass(frozen=True)
class DpclSizes:
    """The two named sizes: one a 2-core CPU trains in the main job's budget, and the paper's."""

    default: DpclSize = DpclSize()
    paper: DpclSize = DpclSize(hidden=600, layers=4, dropout=0.3)


@dataclasses.dataclass(frozen=True)
class DpclConfig:
    """Stage `train_dpcl`: the Deep Clustering network and its training."""

    size: Literal["default", "paper"] = "default"
    sizes: DpclSizes = DpclSizes()
    embedding_dim: int = 20
    nonlinearity: Literal["tanh", "sigmoid"] = "tanh"
    # What a bin weighs in the affinity loss. binary: every bin within features.silence_db of the
    # loudest weighs 1 (Hershey et al. 2016). magnitude: active bins weigh their mixture magnitude
    # |Y| (Wang, Le Roux and Hershey 2018), so the loud bins that decide the SDR dominate and the
    # many faint ones do not take the network's capacity (measured: benchmarks/levers.py).
    loss_weights: Literal["binary", "magnitude"] = "magnitude"
    training: TrainingConfig = TrainingConfig()

    def __post_init__(self) -> None:
        _require(2 <= self.embedding_dim <= 256, "embedding_dim", f"must be in [2, 256], got {self.embedding_dim}")

    @property
    def network(self) -> DpclSize:
        return getattr(self.sizes, self.size)


BASELINE_OBJECTIVES = ("fixed", "pit")


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
    """Stages `train_baseline`: neuron-model mask networks, one per transfer function and objective."""

    transfer_functions: tuple[str, ...] = (
        "threshold", "unipolar_sigmoid", "bipolar_sigmoid", "piecewise_linear", "probabilistic")
    # Parameters of the transfer functions that take any, by name.
    transfer_params: dict[str, dict[str, float]] = dataclasses.field(default_factory=lambda: {
        "piecewise_linear": {"c": 0.5, "x_c": 2.0}, "probabilistic": {"temperature": 1.0}})
    objectives: tuple[Literal["fixed", "pit"], ...] = BASELINE_OBJECTIVES
    topology: Literal["feedforward", "recurrent"] = "feedforward"
    context: int = 3  # frames on each side of the frame a mask is estimated for
    hidden: tuple[int, ...] = (300, 300)
    output_transfer: str = "unipolar_sigmoid"
    training: TrainingConfig = TrainingConfig()

    def __post_init__(self) -> None:
        from dpcl.models.transfer import TRANSFER_FUNCTIONS, make_transfer

        _require(len(self.transfer_functions) >= 1, "transfer_functions", "must name at least one")
        for name in (*self.transfer_functions, self.output_transfer):
            key = "transfer_functions" if name in self.transfer_functions else "output_transfer"
            _require(name in TRANSFER_FUNCTIONS or (key == "output_transfer" and name == "softmax"), key,
                     _unknown_choice(name, list(TRANSFER_FUNCTIONS)))
            _require("-" not in name, key, f"{name!r}: '-' separates transfer and objective in run names")
        for name, values in self.transfer_params.items():
            _require(name in TRANSFER_FUNCTIONS, f"transfer_params.{name}", _unknown_choice(name, list(TRANSFER_FUNCTIONS)))
            try:
                make_transfer(name, **values)
            except ValueError as error:
                raise ConfigError(f"transfer_params.{name}", str(error)) from None
        _require(len(set(self.objectives)) == len(self.objectives) and self.objectives, "objectives",
                 f"must list fixed and/or pit once each, got {list(self.objectives)}")
        _require(0 <= self.context <= 20, "context", f"must be in [0, 20], got {self.context}")
        _require(all(h >= 1 for h in self.hidden), "hidden", f"layer sizes must be >= 1, got {list(self.hidden)}")

    def params_of(self, transfer: str) -> dict[str, float]:
        return dict(self.transfer_params.get(transfer, {}))

    @property
    def runs(self) -> tuple[str, ...]:
        """Run names `<transfer>-<objective>`, as the Snakefile and dvc.yaml name the stages."""
        return tuple(f"{t}-{o}" for t in self.transfer_functions for o in self.objectives)


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    """MLflow: the embedded sqlite store by default, or a team's server (http://host:5000)."""

    uri: str = "sqlite:///mlflow.db"
    experiment: str = "dpcl"
    # Where run artifacts (models, histories) go for the sqlite store; ignored by servers.
    artifact_location: str = "mlartifacts"
    # How long a stage waits for the sqlite store's file lock before it stops with an error
    # (parallel jobs hold it for milliseconds; a process stuck holding it must not hang the pipeline).
    lock_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        _require(self.uri.split(":", 1)[0] in ("sqlite", "http", "https", "postgresql", "mysql", "databricks"),
                 "uri", f"must be a sqlite:///, http(s):// or database URI, got {self.uri!r}")
        _require(bool(self.experiment), "experiment", "must not be empty")
        _require(self.lock_timeout_s > 0, "lock_timeout_s", f"must be positive, got {self.lock_timeout_s}")


@dataclasses.dataclass(frozen=True)
class SeparateConfig:
    """Stage `separate`: k-means on the DPCL embeddings, masks, inverse STFT (DESIGN.md section 3)."""

    # Bins more than features.silence_db below the loudest bin are left out of k-means; they go to
    # `both` sources (mask 1 in every estimate: DESIGN.md's rule), the `nearest` centroid's source,
    # the `louder` source of their frame, or `none` (mask 0 everywhere).
    silent_bins: Literal["both", "nearest", "louder", "none"] = "both"
    # k-means restarts (k-means++ seeds), the lowest inertia wins; 3 reached within 0.01 % of 10's inertia
    # on noisy 2-cluster embeddings at 30 % of its cost (1 sometimes stopped 0.2 % short).
    n_init: int = 3
    seed: int = 0  # k-means random_state
    # Soft masks: softmax over clusters of -soft_alpha * squared distance to each centroid.
    soft: bool = True
    soft_alpha: float = 3.0

    def __post_init__(self) -> None:
        _require(1 <= self.n_init <= 100, "n_init", f"must be in [1, 100], got {self.n_init}")
        _require(self.soft_alpha > 0, "soft_alpha", f"must be > 0, got {self.soft_alpha}")


SPECTRAL_AFFINITIES = ("dense", "knn")


@dataclasses.dataclass(frozen=True)
class SpectralConfig:
    """Methods `spectral` and `dpcl-spectral`: classical spectral clustering of time-frequency bins.

    `spectral` (Ng-Jordan-Weiss) clusters the active bins of one mixture by the leading eigenvectors
    of a normalised Gaussian affinity between bin features (log-magnitude with a context window,
    optionally the bin's frequency and time position): nothing is learned. `dpcl-spectral` runs the
    same eigen-step on the DPCL embeddings with the low-rank trick (an SVD of N x (D+1)).
    """

    affinity: Literal["dense", "knn"] = "knn"  # the pipeline's `spectral` method; the cost run measures both
    context_frames: int = 2       # +-frames of log-magnitude around each bin: (2c+1) x (2k+1) features
    context_bins: int = 1         # +-frequency bins
    # The bin's frequency and time position appended as features, standardised and scaled by these
    # weights (0 leaves one out). Time position makes NJW cut mixtures into time segments rather
    # than sources (measured on two disjoint bands: 0 dB with weight 1, 43 dB with 0), so it is off.
    frequency_weight: float = 1.0
    time_weight: float = 0.0
    # Gaussian kernel width; null: the median distance to the n_neighbors-th neighbour (self-tuning).
    kernel_width: float | None = None
    n_neighbors: int = 10         # k of the sparse k-nearest-neighbour affinity
    max_dense_gib: float = 2.0    # a dense N x N affinity above this is refused (use affinity: knn)
    max_mixtures: int = 50        # the spectral method separates the first N test mixtures (0: all)
    # Cost growth (report and benchmarks/): mixture lengths in seconds, cut from concatenated test mixtures.
    cost_lengths_s: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    cost_repeats: int = 1
    seed: int = 0                 # k-means random_state and the eigensolver's start vector

    def __post_init__(self) -> None:
        _require(0 <= self.context_frames <= 10, "context_frames", f"must be in [0, 10], got {self.context_frames}")
        _require(0 <= self.context_bins <= 10, "context_bins", f"must be in [0, 10], got {self.context_bins}")
        for key in ("frequency_weight", "time_weight"):
            _require(getattr(self, key) >= 0, key, f"must be >= 0, got {getattr(self, key)}")
        _require(self.kernel_width is None or self.kernel_width > 0, "kernel_width",
                 f"must be > 0 or null, got {self.kernel_width}")
        _require(2 <= self.n_neighbors <= 200, "n_neighbors", f"must be in [2, 200], got {self.n_neighbors}")
        _require(self.max_dense_gib > 0, "max_dense_gib", f"must be > 0, got {self.max_dense_gib}")
        _require(self.max_mixtures >= 0, "max_mixtures", f"must be >= 0, got {self.max_mixtures}")
        _require(len(self.cost_lengths_s) >= 1 and all(0 < s <= 60 for s in self.cost_lengths_s), "cost_lengths_s",
                 f"must list lengths in (0, 60] seconds, got {list(self.cost_lengths_s)}")
        _require(self.cost_repeats >= 1, "cost_repeats", f"must be >= 1, got {self.cost_repeats}")


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """Stage `evaluate`: bss_eval scores of every method on the test split."""

    # mir_eval (the reference) or fast (fast_bss_eval's numpy backend: agrees to < 1e-3 dB, faster).
    backend: Literal["mir_eval", "fast"] = "mir_eval"


@dataclasses.dataclass(frozen=True)
class Params:
    """Everything params.yaml may say; one section per pipeline stage."""

    corpus: CorpusConfig = CorpusConfig()
    mix: MixConfig = MixConfig()
    features: FeaturesConfig = FeaturesConfig()
    dpcl: DpclConfig = DpclConfig()
    baselines: BaselineConfig = BaselineConfig()
    tracking: TrackingConfig = TrackingConfig()
    separate: SeparateConfig = SeparateConfig()
    spectral: SpectralConfig = SpectralConfig()
    evaluate: EvaluateConfig = EvaluateConfig()

    def __post_init__(self) -> None:
        _require(self.features.mode in self.mix.modes, "features.mode",
                 f"{self.features.mode!r} is not among mix.modes {list(self.mix.modes)}")
        for section in ("dpcl", "baselines"):  # dynamic mixing draws from the corpus, which LibriMix is not
            _require(self.mix.recipe != "librimix" or not getattr(self, section).training.dynamic_mixing.enabled,
                     f"{section}.training.dynamic_mixing.enabled",
                     "mixes the corpus stage's utterances, not LibriSpeech: turn it off with mix.recipe librimix")


# --------------------------------------------------------------------------- loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key stated twice in one mapping is an error.

    Plain YAML lets the second `features:` silently replace the first: a reader of the file
    would believe the first. Both lines are named so the user can pick.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping, on lines {seen[key]} and {line}",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """Parse a params file, refusing duplicated keys (`_UniqueKeyLoader`)."""
    return yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def load_params(paths: Sequence[str | Path] = ("params.yaml",)) -> Params:
    """Read one or more params files (later ones deep-merged over earlier ones) and validate."""
    merged: dict[str, Any] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ConfigError("", f"params file not found: {path}")
        try:
            data = read_yaml(path) or {}
        except yaml.constructor.ConstructorError as error:
            raise ConfigError("", f"{path}: {error.problem}") from None
        except yaml.YAMLError as error:
            raise ConfigError("", f"{path} is not valid YAML: {error}") from None
        if not isinstance(data, dict):
            raise ConfigError("", f"{path} must hold a mapping of sections, got {type(data).__name__}")
        merged = deep_merge(merged, data)
    params = params_from_dict(merged)
    missing = _unstated_keys(Params, merged, "")
    if missing:
        files = " + ".join(str(p) for p in paths)
        more = f" (and {len(missing) - 1} more: {', '.join(missing[1:4])}{', ...' if len(missing) > 4 else ''})" \
            if len(missing) > 1 else ""
        raise ConfigError(missing[0], f"not stated in {files}{more}: every key lives in params.yaml, "
                                      "which a profile is merged over; copy the section from there")
    return params


def _unstated_keys(cls: type, data: Any, prefix: str) -> list[str]:
    """Keys of `cls` (recursively, list items of dataclasses too) that `data` does not state.

    Why: a key left out would silently take the dataclass default, which is not what a user reads
    in params.yaml. Free-form mappings (`transfer_params`) are values, not sections: not walked.
    """
    if not isinstance(data, Mapping):
        return []
    hints = typing.get_type_hints(cls)
    missing = []
    for field in dataclasses.fields(cls):
        key = f"{prefix}{field.name}"
        if field.name not in data:
            missing.append(key)
            continue
        hint, value = hints[field.name], data[field.name]
        if dataclasses.is_dataclass(hint):
            missing += _unstated_keys(hint, value, f"{key}.")
        elif typing.get_origin(hint) is tuple and dataclasses.is_dataclass(typing.get_args(hint)[0]) \
                and isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                missing += _unstated_keys(typing.get_args(hint)[0], item, f"{key}[{i}].")
    return missing


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
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
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
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"must be a mapping, got {value!r}")
        return {str(k): _coerce(args[1], v, f"{key}.{k}") for k, v in value.items()}
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
