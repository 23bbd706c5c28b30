"""Active speech level, ITU-T P.56 method B, as computed by VOICEBOX `activlev`.

Why: WSJ0-2mix sets the level of each source *relative to its active speech level*, not its
mean power. Mean power depends on how much silence an utterance holds (a 4 s utterance with
1 s of pauses has 1.2 dB less mean power than the same speech without them), so "utterance 1
is x dB louder than utterance 2" is only meaningful for the speech itself. P.56 measures the
power over the samples where speech is active: the mixer divides every source by
sqrt(active level) before applying its dB gain (DESIGN.md section 4).

Method B in brief (VOICEBOX `activlev` with its default options, which produced the official
wsj0-2mix levels):

1. Band-limit the input: 200 Hz high-pass (5th-order Chebyshev II, -0.25 dB at 200 Hz, 50 dB
   stop band); above 14 kHz sampling also a 5.5 kHz low-pass. This removes DC and rumble that
   would otherwise count as speech power.
2. Envelope: |x| through two cascaded one-pole smoothers, time constant 0.03 s, DC gain 1.
3. Threshold ladder: thresholds 3 dB apart (powers of two of the squared envelope), 20 of them
   down from the loudest envelope value. A sample is active for threshold c if the envelope
   was >= c at any time in the last 0.2 s (the hangover bridges short gaps between words).
4. For each threshold c_j, the activity-adjusted level A_j = total energy / active count.
   Speech is judged to lie where A_j sits 15.9 dB (the margin) above its threshold: the level
   is A at the crossing of A_j - C_j = 15.9 dB, linearly interpolated between ladder steps.
5. Activity factor = mean power / active level = fraction of samples counted active.

Known deviation from the ITU `sv56` C reference: sv56 uses a fixed ladder (2^j / 2^15, 6 dB
apart); VOICEBOX's ladder is 3 dB steps at powers of two, counted down from the loudest
envelope. We follow VOICEBOX because wsj0-2mix did. Because the steps sit at fixed powers of
two, a gain change moves the signal across them: on speech the interpolation makes the result
scale-invariant to < 0.01 dB (measured on espeak-ng/flite voices), but a signal with only a few
distinct levels (e.g. equal-amplitude synthetic bursts with sharp edges) can shift by ~0.3 dB.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, signal
from scipy.ndimage import maximum_filter1d

ENVELOPE_TIME_CONSTANT_S = 0.03
HANGOVER_S = 0.2
MARGIN_DB = 15.9
N_THRESHOLDS = 20  # 3 dB apart: a 60 dB range below the loudest envelope value
HIGHPASS_HZ = 200.0
LOWPASS_HZ = 5500.0
LOWPASS_MIN_RATE = 14000  # VOICEBOX drops the 5.5 kHz low-pass below this sampling rate
_SILENT_EXPONENT = np.iinfo(np.int32).min // 2  # exponent standing in for log2(0) = -inf


@dataclass(frozen=True)
class ActiveLevel:
    """Result of a P.56 measurement.

    `level`: active speech power, the mean square over active samples (linear; for a signal
    in [-1, 1] the same number as VOICEBOX `activlev(x, fs)`); dividing the signal by
    sqrt(level) gives it a 0 dB active level. `activity`: fraction of samples judged active.
    """

    level: float
    activity: float

    @property
    def level_db(self) -> float:
        """Active level in dB relative to a full-scale square wave (power 1)."""
        return 10.0 * math.log10(self.level)


def active_level(samples: np.ndarray, rate: int) -> ActiveLevel:
    """P.56 method B active speech level of a mono signal (float, any scale) sampled at `rate` Hz.

    Raises ValueError for an empty, multi-channel, non-finite or all-zero signal: the level
    of silence is undefined, and dividing by it would fill a mixture with NaNs.
    """
    x = _validated(samples, rate)
    filtered = _band_limit(x, rate)
    energy = float(np.sum(np.square(filtered)))  # not np.dot: BLAS threads stall on a busy machine
    if energy == 0.0:
        raise ValueError("signal is all zeros (after the 200 Hz high-pass): it has no active speech level")
    exponents = _envelope_exponents(filtered, rate)  # (n,) int: envelope^2 lies in [2^(e-1), 2^e)
    active_counts, thresholds_db = _ladder_counts(exponents)  # (N_THRESHOLDS,), highest threshold first
    level_db = _crossing_level_db(energy, active_counts, thresholds_db)
    level = 10.0 ** (level_db / 10.0)
    return ActiveLevel(level=level, activity=energy / (len(filtered) * level))


def _validated(samples: np.ndarray, rate: int) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"active_level needs a mono 1-D signal, got shape {x.shape}")
    if x.size == 0:
        raise ValueError("active_level got an empty signal")
    if not np.all(np.isfinite(x)):
        raise ValueError("signal holds NaN or infinite samples")
    if rate <= 2 * HIGHPASS_HZ:
        raise ValueError(f"sampling rate must exceed {2 * HIGHPASS_HZ:g} Hz, got {rate}")
    if not np.any(x):
        raise ValueError("signal is all zeros: it has no active speech level")
    return x


def _band_limit(x: np.ndarray, rate: int) -> np.ndarray:
    """VOICEBOX's default input filters (see module docstring, step 1)."""
    y = signal.sosfilt(_highpass_sos(rate), x)
    if rate >= LOWPASS_MIN_RATE:
        y = signal.sosfilt(_lowpass_sos(rate), y)
    return y


@functools.lru_cache(maxsize=1)
def _prototype_zp() -> tuple[np.ndarray, np.ndarray]:
    """Analog 5th-order Chebyshev II high-pass with 50 dB stop band and -0.25 dB at w = 1.

    scipy designs Chebyshev II filters by their stop-band edge; we solve for the edge that puts
    the -0.25 dB point at w = 1 (the cut-off frequency), as VOICEBOX's tabulated prototype does.
    """
    def excess_db(edge: float) -> float:
        b, a = signal.cheby2(5, 50, edge, "highpass", analog=True)
        _, h = signal.freqs(b, a, [1.0])
        return 20.0 * np.log10(abs(h[0])) + 0.25

    edge = optimize.brentq(excess_db, 0.05, 0.999, xtol=1e-14)
    zeros, poles, _ = signal.cheby2(5, 50, edge, "highpass", analog=True, output="zpk")
    return zeros, poles


@functools.lru_cache(maxsize=4)
def _highpass_sos(rate: int) -> np.ndarray:
    """Digital 200 Hz high-pass: bilinear transform pre-warped at the cut-off, unit gain at Nyquist."""
    zeros, poles = _prototype_zp()
    t = math.tan(math.pi * HIGHPASS_HZ / rate)
    z_d = (1 + zeros * t) / (1 - zeros * t)
    p_d = (1 + poles * t) / (1 - poles * t)
    gain = np.real(np.prod(-1 - p_d) / np.prod(-1 - z_d))
    return signal.zpk2sos(z_d, p_d, gain)


@functools.lru_cache(maxsize=4)
def _lowpass_sos(rate: int) -> np.ndarray:
    """Digital 5.5 kHz low-pass: the same prototype mapped s -> 1/s, unit gain at DC."""
    zeros, poles = _prototype_zp()
    t = math.tan(math.pi * LOWPASS_HZ / rate)
    z_d = (zeros + t) / (zeros - t)
    p_d = (poles + t) / (poles - t)
    gain = np.real(np.prod(1 - p_d) / np.prod(1 - z_d))
    return signal.zpk2sos(z_d, p_d, gain)


def _envelope_exponents(x: np.ndarray, rate: int) -> np.ndarray:
    """Binary exponent e of the squared envelope, after the hangover (steps 2-3).

    e is frexp's exponent: envelope^2 = m * 2^e with m in [0.5, 1), so one exponent step is
    3 dB. The hangover is a causal running maximum of e over the last `hang` samples: a sample
    counts as active for a threshold if the envelope crossed it within the last 0.2 s.
    """
    g = math.exp(-1.0 / (rate * ENVELOPE_TIME_CONSTANT_S))
    envelope = signal.lfilter([(1 - g) ** 2], [1.0, -2 * g, g * g], np.abs(x))  # (n,)
    power = envelope * envelope  # underflows to 0 below ~1e-162, e.g. deep into trailing silence
    _, exponents = np.frexp(power)
    exponents = exponents.astype(np.int32)
    exponents[power == 0.0] = _SILENT_EXPONENT  # frexp(0) gives exponent 0, i.e. "loud": override
    hang = math.ceil(HANGOVER_S * rate) + 1  # samples, as VOICEBOX: ceil(0.2 / (1/fs)) + 1
    # origin shifts the window to [i - hang + 1, i]: a causal maximum (hangover after activity)
    return maximum_filter1d(exponents, size=hang, mode="constant", cval=_SILENT_EXPONENT,
                            origin=(hang - 1) // 2)


def _ladder_counts(exponents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Active-sample count per threshold and the thresholds in dB (both highest threshold first).

    Threshold j (1-based) is the lower edge 2^(e_max - j - 1) of exponent bin j below the top:
    count_j = number of samples whose (hung-over) envelope^2 reaches it. The last bin also
    collects everything quieter, so its count is every sample.
    """
    e_max = int(exponents.max()) + 1
    bins = np.minimum(e_max - exponents.astype(np.int64), N_THRESHOLDS)  # (n,) in 1..N_THRESHOLDS
    counts = np.cumsum(np.bincount(bins, minlength=N_THRESHOLDS + 1)[1:]).astype(np.float64)
    j = np.arange(1, N_THRESHOLDS + 1)
    thresholds_db = 10.0 * math.log10(2.0) * (e_max - j - 1)
    return counts, thresholds_db


def _crossing_level_db(energy: float, counts: np.ndarray, thresholds_db: np.ndarray) -> float:
    """Step 4: activity-adjusted level where it first rises to MARGIN_DB above its threshold."""
    adjusted_db = 10.0 * np.log10(energy / counts)  # A_j, (N_THRESHOLDS,)
    excess = adjusted_db - thresholds_db - MARGIN_DB  # rises as the threshold falls
    crossings = np.flatnonzero((excess[:-1] < 0) & (excess[1:] >= 0))
    if crossings.size:
        j = int(crossings[0])
        fraction = 1.0 / (1.0 - excess[j + 1] / excess[j])  # linear interpolation of the zero
    elif excess[-1] <= 0:  # never reaches the margin: take the lowest threshold
        j, fraction = N_THRESHOLDS - 2, 1.0
    else:  # always above the margin: take the highest threshold
        j, fraction = 0, 0.0
    return float(adjusted_db[j] + fraction * (adjusted_db[j + 1] - adjusted_db[j]))
