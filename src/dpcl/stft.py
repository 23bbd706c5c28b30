"""The one STFT every stage shares: features, separation and oracle masks must agree bin for bin.

Arrays are time-major, (T, F): frame t, frequency bin f. Flattened bins are therefore
ordered t * F + f, which is what the network's (B, T*F, D) embeddings assume.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
from scipy.signal import get_window

from dpcl.config import FeaturesConfig


def analysis_window(name: str, n_fft: int) -> np.ndarray:
    """Periodic window; `sqrt_hann` is DPCL's choice (its square is a Hann, so analysis and
    synthesis with the same window overlap-add to a constant at hop n_fft/4)."""
    hann = get_window("hann", n_fft, fftbins=True)
    if name == "sqrt_hann":
        return np.sqrt(hann)
    if name == "hann":
        return hann
    raise ValueError(f"unknown window {name!r} (allowed: sqrt_hann, hann)")


@dataclass(frozen=True)
class Stft:
    """Analysis and synthesis with the parameters of `FeaturesConfig`."""

    n_fft: int = 256
    hop_length: int = 64
    window: str = "sqrt_hann"

    @classmethod
    def from_config(cls, cfg: FeaturesConfig) -> "Stft":
        return cls(n_fft=cfg.n_fft, hop_length=cfg.hop_length, window=cfg.window)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def analyse(self, samples: np.ndarray) -> np.ndarray:
        """Complex spectrogram (T, F) of a 1-D signal; frames are centred (padded by n_fft/2)."""
        spec = librosa.stft(
            np.asarray(samples, dtype=np.float32),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=analysis_window(self.window, self.n_fft),
            center=True,
        )  # (F, T)
        return spec.T  # (T, F)

    def synthesise(self, spec: np.ndarray, length: int) -> np.ndarray:
        """Inverse of `analyse` (weighted overlap-add), trimmed or padded to `length` samples."""
        return librosa.istft(
            np.ascontiguousarray(spec.T),  # (F, T)
            hop_length=self.hop_length,
            n_fft=self.n_fft,
            window=analysis_window(self.window, self.n_fft),
            center=True,
            length=length,
        )

    def n_frames(self, n_samples: int) -> int:
        """Frames `analyse` returns for a signal of `n_samples` (centred framing)."""
        return 1 + n_samples // self.hop_length
