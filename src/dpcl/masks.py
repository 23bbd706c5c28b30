"""Time-frequency masks: k-means on Deep Clustering embeddings, oracle masks, masked resynthesis.

Every array is time-major like the rest of the package (dpcl.stft): a spectrogram is (T, F), the
masks of C sources are (C, T, F), and flattened bins are ordered n = t * F + f, the order of
`DeepClusteringNet`'s (T*F, D) embeddings. These functions are pure (numpy and scikit-learn in,
numpy out); dpcl.separate puts them behind the model and the files.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import ThreadpoolController

from dpcl.stft import Stft

SILENT_BIN_RULES = ("both", "nearest", "louder", "none")
ORACLE_MASKS = ("ibm", "irm")
_THREADPOOLS: list[ThreadpoolController] = []  # built on first use, once sklearn's libraries are loaded


def _one_thread():
    """Context: OpenMP and BLAS pools limited to one thread (k-means of one utterance is too small
    for threads: measured on 2 cores, 2 threads took 5x the CPU time and 2-8x the wall time)."""
    if not _THREADPOOLS:
        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0].limit(limits=1)


def kmeans_masks(embeddings: np.ndarray, active: np.ndarray, n_sources: int, seed: int = 0, n_init: int = 3, *,
                 silent_bins: str = "both", soft: bool = False, alpha: float = 5.0,
                 magnitude: np.ndarray | None = None, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Masks (C, T, F) from k-means (K = `n_sources`) on the embeddings of the active bins.

    embeddings: (T*F, D), bins time-major. active: (T, F) bool (or (T*F,) with `shape=(T, F)`):
    the bins within `silence_db` of the loudest bin (`features.silence_weights`); only these are
    clustered, because the training loss gives the others weight 0 and never shaped their
    embeddings. scikit-learn's KMeans, k-means++ seeding, `n_init` restarts, `random_state=seed`,
    one thread: the same input always gives the same masks. The C masks come in the clusters'
    order, an arbitrary permutation of the sources (evaluation resolves it).

    Sum rule. Active bins: hard masks (default) are one-hot, so they sum to exactly 1; `soft=True`
    gives softmax_c(-alpha * ||v - mu_c||^2), which sums to 1 up to float rounding.
    Silent bins, by `silent_bins`:
      both    mask 1 in every source (sum = C), the default (DESIGN.md section 3): the rule does not
              depend on embeddings the loss never trained, and each estimate keeps the low-level
              background instead of spectral holes; the bins are >= 40 dB down, so SDR barely moves;
      nearest the source of the nearest centroid (sum = 1; soft: the same softmax as active bins);
      louder  the source holding most of the frame's active energy (sum = 1; frames without
              active bins: the louder source of the utterance); needs `magnitude` (T, F);
      none    mask 0 everywhere (sum = 0), as funcwj/deep-clustering does.
    Degenerate input (fewer active bins than sources, e.g. digital silence): nothing is clustered
    and source 0 gets every active bin (silent bins follow the rule, `nearest` counting as source 0).
    """
    if silent_bins not in SILENT_BIN_RULES:
        raise ValueError(f"unknown silent_bins rule {silent_bins!r} (allowed: {', '.join(SILENT_BIN_RULES)})")
    if silent_bins == "louder" and magnitude is None:
        raise ValueError("silent_bins='louder' needs the mixture magnitude (T, F)")
    active = np.asarray(active, dtype=bool)
    if active.ndim == 2:
        shape = active.shape
    elif shape is None:
        raise ValueError("a flat `active` (T*F,) needs shape=(T, F)")
    n_frames, n_bins = shape
    n_total = n_frames * n_bins
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != n_total or active.size != n_total:
        raise ValueError(f"embeddings {embeddings.shape} and active {active.shape} do not match (T, F) = {shape}")
    if n_sources < 1:
        raise ValueError(f"n_sources must be >= 1, got {n_sources}")
    flat_active = active.reshape(-1)
    index = np.flatnonzero(flat_active)
    masks = np.zeros((n_sources, n_total), dtype=np.float32)  # (C, T*F)

    weights = None  # (T*F, C): soft assignment, or None without centroids
    if len(index) >= n_sources:
        with _one_thread():
            kmeans = KMeans(n_clusters=n_sources, n_init=n_init, random_state=seed).fit(embeddings[index])
        if soft or silent_bins == "nearest":
            centroids = kmeans.cluster_centers_.astype(np.float64)  # (C, D)
            sq_dist = (np.square(embeddings, dtype=np.float64).sum(axis=1, keepdims=True)
                       - 2.0 * embeddings @ centroids.T + np.square(centroids).sum(axis=1))  # (T*F, C)
            weights = _softmax(-alpha * sq_dist) if soft else None
            nearest = np.argmin(sq_dist, axis=1)  # (T*F,)
        if soft:
            masks[:, index] = weights[index].T
        else:
            masks[kmeans.labels_, index] = 1.0
    else:
        masks[0, index] = 1.0
        nearest = np.zeros(n_total, dtype=np.int64)

    silent = np.flatnonzero(~flat_active)
    if silent_bins == "both":
        masks[:, silent] = 1.0
    elif silent_bins == "nearest":
        if weights is not None:
            masks[:, silent] = weights[silent].T
        else:
            masks[nearest[silent], silent] = 1.0
    elif silent_bins == "louder":
        power = np.square(np.asarray(magnitude, dtype=np.float64)).reshape(n_frames, n_bins)
        frame_energy = (masks.reshape(n_sources, n_frames, n_bins) * power).sum(axis=2)  # (C, T); silent bins still 0
        louder = np.argmax(frame_energy, axis=0)  # (T,)
        quiet_frames = frame_energy.sum(axis=0) <= 0.0
        louder[quiet_frames] = int(np.argmax(frame_energy.sum(axis=1)))
        masks[louder[silent // n_bins], silent] = 1.0
    return masks.reshape(n_sources, n_frames, n_bins)


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the maximum (no overflow)."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def oracle_masks(source_mags: np.ndarray, kind: str) -> np.ndarray:
    """Ideal masks (C, T, F) from the sources' STFT magnitudes (C, T, F); both sum to 1 per bin.

    ibm: ideal binary mask, one-hot on the dominant source (argmax; a tie goes to the lower index),
         the DPCL training target and the ceiling of binary-mask k-means; sums to exactly 1.
    irm: ideal ratio mask |S_c| / sum_c |S_c|; a bin where every source is 0 gets 1/C, so the sum
         is 1 everywhere (to float rounding) and nothing is divided by zero.
    """
    mags = np.abs(np.asarray(source_mags))
    if mags.ndim != 3:
        raise ValueError(f"source magnitudes must be (C, T, F), got shape {mags.shape}")
    n_sources = mags.shape[0]
    if kind == "ibm":
        dominant = np.argmax(mags, axis=0)  # (T, F)
        return (np.arange(n_sources)[:, None, None] == dominant[None]).astype(np.float32)
    if kind == "irm":
        mags = mags.astype(np.float64)
        total = mags.sum(axis=0)  # (T, F)
        tiny = np.finfo(np.float64).tiny
        ratio = np.where(total > tiny, mags / np.maximum(total, tiny), 1.0 / n_sources)
        return ratio.astype(np.float32)
    raise ValueError(f"unknown oracle mask {kind!r} (allowed: {', '.join(ORACLE_MASKS)})")


def apply_masks(mix_spec: np.ndarray, masks: np.ndarray, stft: Stft, length: int) -> np.ndarray:
    """Waveforms (C, length): inverse STFT of each mask times the mixture's complex STFT (T, F).

    The estimate keeps the mixture's phase. All-ones masks give back the mixture itself
    (`Stft` analysis and synthesis are a perfect-reconstruction pair).
    """
    mix_spec = np.asarray(mix_spec)
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[1:] != mix_spec.shape:
        raise ValueError(f"masks {masks.shape} do not match the mixture spectrogram {mix_spec.shape} as (C, T, F)")
    return np.stack([stft.synthesise(mix_spec * mask, length) for mask in masks])  # (C, length)
