"""Classical spectral clustering of time-frequency bins, and the same eigen-step on DPCL embeddings.

The lecture's contrast, made measurable. The traditional route (Ng, Jordan & Weiss, NIPS 2001):
describe every active bin by hand-made features, build the N x N Gaussian affinity A between bins,
take the K leading eigenvectors of the normalised affinity D^-1/2 A D^-1/2, normalise their rows
and run k-means on them. Nothing is learned, and the affinity costs O(N^2) memory and time: a
4-second mixture has ~30,000 active bins, a 3.6 GB float32 matrix. The sparse k-nearest-neighbour
affinity (O(N k) memory, scipy's ARPACK eigensolver) makes long mixtures fit, at the price of an
approximate graph.

Deep Clustering learns embeddings V (N x D) whose affinity V V^T is already the target one, so
plain k-means suffices; and when a spectral step is wanted anyway, it is cheap because that
affinity has rank D + 1 (`low_rank_njw_embedding`: an SVD of N x (D + 1), the N x N matrix is
never formed).

Arrays are time-major as everywhere in the package: spectrograms (T, F), bins n = t * F + f.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
from sklearn.neighbors import NearestNeighbors

from dpcl.config import SpectralConfig
from dpcl.errors import DpclError

GIB = 2**30
WIDTH_SAMPLE = 2000  # bins drawn to estimate the self-tuning kernel width of a dense affinity


class AffinityTooLarge(DpclError):
    """A dense affinity would exceed the memory budget (`spectral.max_dense_gib`)."""


def bin_features(logmag: np.ndarray, active: np.ndarray, cfg: SpectralConfig) -> np.ndarray:
    """Features (N, d) of the N active bins (time-major order): what classical clustering sees.

    Each bin gets the standardised log-magnitude of a (2 * context_frames + 1) x (2 * context_bins
    + 1) patch around it (edges repeated), so a bin is described by its neighbourhood's spectral
    shape rather than its level alone; then its frequency and time position, standardised over
    the active bins and scaled by `frequency_weight` and `time_weight` (a weight of 0 leaves the
    column out).

    The patch columns are divided by sqrt(patch size), so the patch as a whole weighs as much as
    one position column at weight 1 and the weights keep their meaning whatever the context.
    Unscaled, 15 level columns drown the frequency position and NJW splits loud bins from quiet
    ones instead of sources (measured on two disjoint noise bands: 0 dB SDR unscaled, 43 dB
    scaled, k-NN affinity).
    """
    logmag = np.asarray(logmag, dtype=np.float64)
    active = np.asarray(active, dtype=bool)
    if logmag.ndim != 2 or active.shape != logmag.shape:
        raise ValueError(f"logmag {logmag.shape} and active {active.shape} must both be (T, F)")
    spread = logmag[active].std() if active.any() else 1.0
    z = (logmag - (logmag[active].mean() if active.any() else 0.0)) / (spread if spread > 0 else 1.0)
    ct, cf = cfg.context_frames, cfg.context_bins
    padded = np.pad(z, ((ct, ct), (cf, cf)), mode="edge")
    patches = np.lib.stride_tricks.sliding_window_view(padded, (2 * ct + 1, 2 * cf + 1))  # (T, F, 2ct+1, 2cf+1)
    rows, cols = np.nonzero(active)
    patch_size = (2 * ct + 1) * (2 * cf + 1)
    columns = [patches[rows, cols].reshape(len(rows), patch_size) / np.sqrt(patch_size)]
    for position, weight in ((cols, cfg.frequency_weight), (rows, cfg.time_weight)):
        if weight > 0 and len(rows) > 1:
            position = position.astype(np.float64)
            std = position.std()
            columns.append(((position - position.mean()) / (std if std > 0 else 1.0) * weight)[:, None])
    return np.ascontiguousarray(np.hstack(columns), dtype=np.float32)


def dense_affinity_bytes(n_bins: int) -> int:
    """Bytes of the dense float32 affinity of `n_bins` bins (the guard's estimate)."""
    return 4 * n_bins * n_bins


def check_dense_budget(n_bins: int, max_gib: float) -> None:
    """Refuse, before allocating anything, a dense affinity larger than `max_gib`."""
    need = dense_affinity_bytes(n_bins)
    if need > max_gib * GIB:
        raise AffinityTooLarge(
            f"a dense affinity of {n_bins} active bins needs {need / GIB:.1f} GiB, over the budget "
            f"spectral.max_dense_gib = {max_gib:g}: use the sparse option (spectral.affinity: knn) "
            f"or raise the budget")


def kernel_width(features: np.ndarray, n_neighbors: int, seed: int = 0) -> float:
    """Self-tuning Gaussian width: the median distance of a bin to its `n_neighbors`-th neighbour.

    Estimated on at most WIDTH_SAMPLE bins (a seeded draw) searched against all bins: the median
    is stable long before every bin is queried, and the full search is the cost we avoid.
    """
    n = len(features)
    k = min(n_neighbors, n - 1)
    if k < 1:
        return 1.0
    rng = np.random.default_rng(seed)
    queries = features[rng.choice(n, size=min(n, WIDTH_SAMPLE), replace=False)]
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(queries)
    width = float(np.median(distances[:, k]))
    return width if width > 0 else 1.0


def dense_affinity(features: np.ndarray, width: float, max_gib: float) -> np.ndarray:
    """(N, N) float32 Gaussian affinity exp(-|x_i - x_j|^2 / (2 width^2)), zero diagonal (NJW).

    Checked against the memory budget first (AffinityTooLarge names the sparse option).
    """
    n = len(features)
    check_dense_budget(n, max_gib)
    x = np.asarray(features, dtype=np.float32)
    norms = np.einsum("nd,nd->n", x, x)
    affinity = x @ x.T  # (N, N), reused in place for every step below: one N x N buffer in all
    affinity *= -2.0
    affinity += norms[:, None]
    affinity += norms[None, :]
    np.maximum(affinity, 0.0, out=affinity)
    affinity *= -1.0 / (2.0 * width * width)
    np.exp(affinity, out=affinity)
    np.fill_diagonal(affinity, 0.0)
    return affinity


def knn_affinity(features: np.ndarray, n_neighbors: int, width: float | None = None) -> scipy.sparse.csr_matrix:
    """Sparse symmetric Gaussian affinity on the k-nearest-neighbour graph (CSR, zero diagonal).

    Edge weights exp(-d^2 / (2 width^2)); width None: the median k-th neighbour distance of the
    same search. Symmetrised with the elementwise maximum, so i ~ j when either lists the other.
    """
    n = len(features)
    k = min(n_neighbors, n - 1)
    if k < 1:
        raise ValueError(f"a k-NN affinity needs at least 2 bins, got {n}")
    distances, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
    distances, neighbours = distances[:, 1:], neighbours[:, 1:]  # drop each bin itself
    if width is None:
        width = float(np.median(distances[:, -1])) or 1.0
    weights = np.exp(-np.square(distances) / (2.0 * width * width)).astype(np.float64)
    graph = scipy.sparse.csr_matrix((weights.ravel(), (np.repeat(np.arange(n), k), neighbours.ravel())), shape=(n, n))
    return graph.maximum(graph.T).tocsr()


def njw_embedding(affinity: np.ndarray | scipy.sparse.spmatrix, n_clusters: int, seed: int = 0) -> np.ndarray:
    """Rows (N, K) of the K leading eigenvectors of D^-1/2 A D^-1/2, each row scaled to unit length.

    scipy's ARPACK (`eigsh`, largest algebraic) on the dense or sparse matrix, started from a seeded
    vector so the same input gives the same eigenvectors. A bin without any affinity (degree 0)
    keeps a zero row in the normalised matrix.
    """
    n = affinity.shape[0]
    if n <= n_clusters:
        return np.eye(n, n_clusters, dtype=np.float64)
    degrees = np.asarray(affinity.sum(axis=1), dtype=np.float64).ravel()
    scale = np.where(degrees > 0, 1.0 / np.sqrt(np.maximum(degrees, np.finfo(np.float64).tiny)), 0.0)
    if scipy.sparse.issparse(affinity):
        normalised = scipy.sparse.diags(scale) @ affinity @ scipy.sparse.diags(scale)
    else:
        normalised = affinity  # scaled in place: the dense matrix is the memory that matters
        normalised *= scale[:, None].astype(normalised.dtype)
        normalised *= scale[None, :].astype(normalised.dtype)
    start = np.random.default_rng(seed).standard_normal(n)
    try:
        _, vectors = scipy.sparse.linalg.eigsh(normalised, k=n_clusters, which="LA", v0=start)
    except scipy.sparse.linalg.ArpackNoConvergence as error:
        raise DpclError(f"the eigensolver did not converge on a {n}-bin affinity ({error}); a k-NN graph "
                        "of many disconnected parts does this: raise spectral.n_neighbors") from None
    return _unit_rows(vectors)


def low_rank_njw_embedding(embeddings: np.ndarray, n_clusters: int) -> np.ndarray:
    """NJW rows (N, K) for the affinity of unit-norm embeddings V, without the N x N matrix.

    The affinity is A = (1 + V V^T) / 2 = W W^T with W = [1, V] / sqrt(2): cosine similarity shifted
    into [0, 1] as spectral clustering needs, and of rank D + 1. Degrees are W (W^T 1), O(N D);
    D^-1/2 A D^-1/2 = U U^T with U = D^-1/2 W, whose leading eigenvectors are U's leading left
    singular vectors: one thin SVD of N x (D + 1). The diagonal (self-affinity 1) is kept, as
    removing it would break the low rank; it shifts every eigenvalue by about 1 / degree only.
    """
    v = np.asarray(embeddings, dtype=np.float64)
    w = np.hstack([np.ones((len(v), 1)), v]) / np.sqrt(2.0)  # (N, D+1)
    degrees = w @ w.sum(axis=0)  # (N,) = A 1
    u = w / np.sqrt(np.maximum(degrees, np.finfo(np.float64).tiny))[:, None]
    left, _, _ = np.linalg.svd(u, full_matrices=False)  # singular values in descending order
    return _unit_rows(left[:, :n_clusters])


def dense_low_rank_affinity(embeddings: np.ndarray) -> np.ndarray:
    """The (N, N) affinity (1 + V V^T) / 2 that `low_rank_njw_embedding` never forms (for tests and cost runs)."""
    v = np.asarray(embeddings, dtype=np.float64)
    return (1.0 + v @ v.T) / 2.0


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def spectral_rows(logmag: np.ndarray, active: np.ndarray, n_clusters: int, cfg: SpectralConfig,
                  affinity: str | None = None) -> np.ndarray:
    """Spectral rows (N_active, K) of one mixture's active bins, by the dense or k-NN affinity."""
    kind = affinity or cfg.affinity
    if kind not in ("dense", "knn"):
        raise ValueError(f"unknown affinity {kind!r} (allowed: dense, knn)")
    features = bin_features(logmag, active, cfg)
    if len(features) <= n_clusters:  # (near) digital silence: nothing to cluster, as njw_embedding's own rule
        return np.eye(len(features), n_clusters, dtype=np.float64)
    if kind == "dense":
        check_dense_budget(len(features), cfg.max_dense_gib)  # before the width search costs anything
        width = cfg.kernel_width or kernel_width(features, cfg.n_neighbors, cfg.seed)
        matrix = dense_affinity(features, width, cfg.max_dense_gib)
    elif kind == "knn":
        matrix = knn_affinity(features, cfg.n_neighbors, cfg.kernel_width)
    return njw_embedding(matrix, n_clusters, cfg.seed)


def scatter_rows(rows: np.ndarray, active: np.ndarray) -> np.ndarray:
    """(T*F, K) array with the active bins' rows in place and zeros elsewhere (kmeans_masks' input)."""
    active = np.asarray(active, dtype=bool).reshape(-1)
    full = np.zeros((active.size, rows.shape[1]), dtype=np.float32)
    full[active] = rows
    return full


__all__ = ["AffinityTooLarge", "bin_features", "check_dense_budget", "dense_affinity", "dense_affinity_bytes",
           "dense_low_rank_affinity", "kernel_width", "knn_affinity", "low_rank_njw_embedding", "njw_embedding",
           "scatter_rows", "spectral_rows"]
