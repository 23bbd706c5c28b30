"""Per-source augmentation for dynamic mixing: new voices and new recording chains from few.

Why: the default corpus holds tens of real speakers, each recorded through one chain (a game
studio's microphone, a volunteer's headset). A separator trained on them can learn the chain
instead of the voice. Each change here is cheap, seeded by the caller's generator, and neutral at
its off value (AugmentationConfig), so every lever can be measured alone:

- speed perturbation: polyphase resampling by a rational factor, so tempo and pitch move
  together (sox `speed`); the usual way to make new speakers from few (DESIGN.md section 9).
  A perturbed voice is named as a new speaker, `<speaker>-sp<factor>`, but stays in its group:
  it is still the same person and is never mixed with its own original.
- spectral tilt: a first-order pre-emphasis (or de-emphasis) filter, a different microphone;
- telephone band: 300-3400 Hz band-pass, a telephone line or a radio link.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy.signal import butter, lfilter, resample_poly, sosfilt

from dpcl.config import AugmentationConfig

TELEPHONE_BAND_HZ = (300.0, 3400.0)


def speed_perturb(samples: np.ndarray, factor: float) -> np.ndarray:
    """Play `samples` `factor` times faster: the length becomes len / factor (pitch moves too)."""
    if factor == 1.0:
        return samples
    ratio = Fraction(1.0 / factor).limit_denominator(100)  # 0.9 -> 10/9: longer and lower
    return resample_poly(samples, ratio.numerator, ratio.denominator)


def perturbed_speaker(speaker: str, factor: float) -> str:
    """The speaker id of a speed-perturbed voice (the original id when factor is 1)."""
    return speaker if factor == 1.0 else f"{speaker}-sp{factor:g}"


def spectral_tilt(samples: np.ndarray, a: float) -> np.ndarray:
    """y[n] = x[n] - a x[n-1]: a > 0 brightens (pre-emphasis), a < 0 darkens."""
    return lfilter([1.0, -a], [1.0], samples) if a else samples


def telephone_band(samples: np.ndarray, rate: int) -> np.ndarray:
    """4th-order Butterworth band-pass over the telephone band (capped below Nyquist)."""
    low, high = TELEPHONE_BAND_HZ
    high = min(high, 0.45 * rate)
    sos = butter(4, [low, high], btype="bandpass", fs=rate, output="sos")
    return sosfilt(sos, samples)


@dataclass(frozen=True)
class Augmented:
    """One augmented source and what was done to it."""

    samples: np.ndarray
    speed: float
    tilt: float
    telephone: bool


def augment_source(samples: np.ndarray, rate: int, cfg: AugmentationConfig, rng: np.random.Generator) -> Augmented:
    """Apply the configured changes to one source. The generator is always advanced by the same
    number of draws, so switching one lever on does not reshuffle the others' draws."""
    draws = rng.random(4)
    speed = 1.0
    if cfg.speed_factors:
        pick = cfg.speed_factors[int(draws[1] * len(cfg.speed_factors))]
        speed = pick if draws[0] < cfg.speed_probability else 1.0
    tilt = cfg.tilt * (2.0 * draws[2] - 1.0)
    telephone = bool(draws[3] < cfg.telephone_probability)
    out = speed_perturb(samples, speed)
    out = spectral_tilt(out, tilt)
    if telephone:
        out = telephone_band(out, rate)
    return Augmented(np.asarray(out, dtype=np.float64), speed, tilt, telephone)
