"""ITU-T P.56 active speech level: known answers on tones and noise with known silent stretches."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from dpcl.activlev import HANGOVER_S, active_level

RATE = 8000


def bursts(wave: np.ndarray, on: list[tuple[float, float]], seconds: float, rate: int = RATE) -> np.ndarray:
    """`wave` (at least `seconds` long) kept only inside the (start, stop) stretches, silent elsewhere."""
    t = np.arange(int(seconds * rate)) / rate
    keep = np.zeros(len(t), dtype=bool)
    for start, stop in on:
        keep |= (t >= start) & (t < stop)
    return np.where(keep, wave[: len(t)], 0.0)


def tone(freq: float, seconds: float, amplitude: float, rate: int = RATE) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)


# two 4 s bursts in 12 s: 2/3 active. P.56 also counts the 0.2 s hangover (plus the ~0.1 s the
# 30 ms envelope takes to fall 16 dB) after each burst, so activity sits a little above 2/3.
ON = [(1.0, 5.0), (7.0, 11.0)]
SHARE = 8.0 / 12.0
MAX_EXTRA = len(ON) * (HANGOVER_S + 0.15) / 12.0


def test_tone_bursts_level_is_a_squared_over_two_and_activity_the_active_share():
    amplitude = 0.3
    result = active_level(bursts(tone(1000, 12, amplitude), ON, 12), RATE)
    assert result.level_db == pytest.approx(10 * math.log10(amplitude**2 / 2), abs=0.5)
    assert SHARE <= result.activity <= SHARE + MAX_EXTRA
    assert result.level * result.activity * 12 * RATE == pytest.approx(amplitude**2 / 2 * 8 * RATE, rel=0.01)


def test_level_scales_with_power_and_activity_does_not_change():
    x = bursts(tone(1000, 12, 0.02), ON, 12)
    quiet, loud = active_level(x, RATE), active_level(10 * x, RATE)  # 20 dB louder
    assert loud.level / quiet.level == pytest.approx(100, rel=0.01)
    assert loud.activity == pytest.approx(quiet.activity, abs=0.01)


def test_noise_bursts():
    rng = np.random.default_rng(0)
    sos = signal.butter(6, [300, 3400], btype="bandpass", fs=RATE, output="sos")  # telephone band:
    noise = signal.sosfilt(sos, rng.standard_normal(14 * RATE)) * 0.1  # untouched by P.56's 200 Hz high-pass
    on = [(1.0, 7.0), (8.0, 14.0)]
    x = bursts(noise, on, 14)
    active = x[np.abs(x) > 0]
    result = active_level(x, RATE)
    assert result.level_db == pytest.approx(10 * math.log10(np.mean(active**2)), abs=0.4)
    assert 12 / 14 <= result.activity <= 12 / 14 + 2 * (HANGOVER_S + 0.15) / 14


def test_hangover_bridges_short_gaps_but_not_long_pauses():
    n = np.arange(4 * RATE)
    x = tone(500, 4, 0.2)
    short_gaps = np.where(n % (RATE // 2) < RATE * 4 // 10, x, 0.0)  # 0.1 s gap after every 0.4 s of tone
    assert active_level(short_gaps, RATE).activity > 0.98  # the 0.2 s hangover spans every gap
    long_pauses = np.where(n % RATE < RATE // 2, x, 0.0)  # 0.5 s tone, 0.5 s pause
    assert 0.5 < active_level(long_pauses, RATE).activity < 0.85


def test_long_trailing_silence_does_not_change_the_level():
    x = np.zeros(14 * RATE)
    x[RATE: 2 * RATE] = tone(1000, 1, 0.1)
    # after ~11 s of silence the squared envelope underflows to 0, which must read as silence
    long_tail, short_tail = active_level(x, RATE), active_level(x[: 3 * RATE], RATE)
    assert long_tail.level == pytest.approx(short_tail.level, rel=1e-9)
    assert long_tail.activity * 14 == pytest.approx(short_tail.activity * 3, rel=1e-9)


def test_dc_offset_and_out_of_band_energy_are_not_speech():
    amplitude = 0.2
    x = bursts(tone(1000, 12, amplitude), ON, 12)
    with_dc = active_level(x + 0.3, RATE)  # the 200 Hz high-pass removes the offset
    assert with_dc.level_db == pytest.approx(active_level(x, RATE).level_db, abs=0.1)
    wide = bursts(tone(1000, 12, amplitude, 16000) + tone(7000, 12, amplitude, 16000), ON, 12, 16000)
    at_16k = active_level(wide, 16000)  # at 16 kHz the 5.5 kHz low-pass removes the 7 kHz tone
    assert at_16k.level_db == pytest.approx(10 * math.log10(amplitude**2 / 2), abs=0.5)


@pytest.mark.parametrize(("samples", "message"), [
    (np.zeros(RATE), "all zeros"),
    (np.zeros(0), "empty"),
    (np.ones((RATE, 2)), "mono 1-D"),
    (np.r_[np.ones(10), np.nan], "NaN"),
])
def test_unmeasurable_signals_are_refused(samples, message):
    with pytest.raises(ValueError, match=message):
        active_level(samples, RATE)
