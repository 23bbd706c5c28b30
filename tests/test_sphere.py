"""Raw WSJ0: NIST SPHERE files read directly, their shorten bodies decoded by FFmpeg (PyAV).

No shorten encoder is installable, so a small one is written below from the format (what
FFmpeg's libavcodec/shorten.c decodes): the magic `ajkg`, version 2, then Rice-coded fields.
Each `uvar(v, k)` is v >> k zeros, a one, then the low k bits of v, most significant first;
a `ulong` is uvar(k, 2) then uvar(v, k) with k the bit length of v; a signed residual r is
uvar(2r, k + 1) when r >= 0, else uvar(-2r - 1, k + 1). The header is the file type, channels,
block size, maxnlpc, nmean and nskip as ulongs; then per block and channel a function code
(uvar(fn, 2)): DIFF0..DIFF3 (fixed polynomial predictors from the last 3 samples, DIFF0 from the
running mean of the last nmean blocks; then uvar(k, 3) and the residuals), ZERO (a silent
block), BLOCKSIZE (a ulong: the shorter last block), VERBATIM (uvar(n, 5) and n bytes as
uvar(b, 8)), and QUIT at the end. Only the decoder's output proves the encoder right: every
test decodes bit-exactly what it encoded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dpcl.audio import AudioError, read_audio, read_sphere, read_sphere_header
from dpcl.corpus.wsj0 import plan_wsj0
from dpcl.mixing import run_mix
from test_mixing import make_params, make_wsj0

FN_QUIT, FN_BLOCKSIZE, FN_ZERO, FN_VERBATIM = 4, 5, 8, 9
TYPE_S16HL, TYPE_S16LH = 3, 5  # big- and little-endian 16-bit: the decoder gives the same integers
SHORTEN = "pcm,embedded-shorten-v2.00"


# --------------------------------------------------------------------------- a shorten encoder


class BitWriter:
    """Bits, most significant first, gathered as 0/1 arrays and packed at the end."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []

    def raw(self, value: int, n: int) -> None:
        self.chunks.append(np.array([(value >> (n - 1 - i)) & 1 for i in range(n)], dtype=np.uint8))

    def uvar(self, value: int, k: int) -> None:
        self.uvars(np.array([value], dtype=np.int64), k)

    def ulong(self, value: int) -> None:
        k = int(value).bit_length()
        self.uvar(k, 2)
        self.uvar(value, k)

    def uvars(self, values: np.ndarray, k: int) -> None:
        """Many uvar(v, k) at once: each code is v >> k zeros, a one, k low bits."""
        assert values.min() >= 0
        lengths = (values >> k) + 1 + k
        ends = np.cumsum(lengths)
        bits = np.zeros(int(ends[-1]), dtype=np.uint8)
        ones = ends - k - 1  # where each code's terminating one sits
        bits[ones] = 1
        for j in range(k):  # bit j of the low part, most significant first
            bits[ones + 1 + j] = (values >> (k - 1 - j)) & 1
        self.chunks.append(bits)

    def svars(self, values: np.ndarray, k: int) -> None:
        self.uvars(np.where(values >= 0, 2 * values, -2 * values - 1), k + 1)

    def tobytes(self) -> bytes:
        return np.packbits(np.concatenate(self.chunks)).tobytes()  # zero-padded to whole bytes


def c_div(a: int, b: int) -> int:
    """C's integer division (truncates toward zero), as the decoder's running means use."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def residual_bits(u: np.ndarray, k: int) -> int:
    return int(np.sum(u >> (k + 1))) + len(u) * (k + 2)


def shorten_encode(samples: np.ndarray, blocksize: int = 256, nmean: int = 4, file_type: int = TYPE_S16LH,
                   verbatim: bytes = b"", used: set[int] | None = None) -> bytes:
    """Shorten version 2 of int16 samples, (n,) or (n, channels): per block and channel the
    cheapest of DIFF0..DIFF3 (ZERO for silence); `used` collects the function codes written."""
    used = set() if used is None else used
    x = np.asarray(samples, dtype=np.int64)
    x = x[:, None] if x.ndim == 1 else x
    n, channels = x.shape
    out = BitWriter()
    for byte in b"ajkg":
        out.raw(byte, 8)
    out.raw(2, 8)  # version
    for field in (file_type, channels, blocksize, 0, nmean, 0):  # maxnlpc 0: no LPC; nskip 0
        out.ulong(field)
    if verbatim:  # skipped by the decoder
        out.uvar(FN_VERBATIM, 2)
        out.uvar(len(verbatim), 5)
        for byte in verbatim:
            out.uvar(byte, 8)
    history = np.zeros((channels, 3), dtype=np.int64)  # the decoder's wrap: last 3 samples, zeros first
    means = [[0] * max(1, nmean) for _ in range(channels)]
    current = blocksize
    for start in range(0, n, blocksize):
        block = x[start:start + blocksize]
        if len(block) != current:
            current = len(block)
            out.uvar(FN_BLOCKSIZE, 2)
            out.ulong(current)
            used.add(FN_BLOCKSIZE)
        for c in range(channels):
            samples_c = block[:, c]
            offset = means[c][0] if nmean == 0 else c_div(nmean // 2 + sum(means[c]), nmean)
            if not samples_c.any():
                out.uvar(FN_ZERO, 2)
                fn = FN_ZERO
            else:
                joined = np.concatenate([history[c], samples_c])
                options = []
                for order in range(4):
                    residual = samples_c - offset if order == 0 else np.diff(joined, order)[3 - order:]
                    u = np.where(residual >= 0, 2 * residual, -2 * residual - 1)
                    cost, k = min((residual_bits(u, k), k) for k in range(24))
                    options.append((cost, order, k, residual))
                _, fn, k, residual = min(options, key=lambda option: option[:2])
                out.uvar(fn, 2)
                out.uvar(k, 3)
                out.svars(residual, k)
            used.add(fn)
            if nmean:
                means[c] = means[c][1:] + [c_div(current // 2 + int(samples_c.sum()), current)]
            history[c] = np.concatenate([history[c], samples_c])[-3:]
    out.uvar(FN_QUIT, 2)
    return out.tobytes()


def sphere_bytes(body: bytes, sample_count: int, channels: int = 1, coding: str = SHORTEN, rate: int = 16000,
                 byte_format: str = "01") -> bytes:
    """A WSJ0-like 1024-byte NIST SPHERE header, then `body`."""
    lines = ["NIST_1A", "   1024", "database_id -s4 wsj0", "utterance_id -s8 01ab0102",
             f"channel_count -i {channels}", f"sample_count -i {sample_count}", f"sample_rate -i {rate}",
             "sample_n_bytes -i 2", f"sample_byte_format -s2 {byte_format}", "sample_sig_bits -i 16",
             f"sample_coding -s{len(coding)} {coding}", "end_head"]
    return ("\n".join(lines) + "\n").encode().ljust(1024, b" ") + body


def write_shorten_sphere(path: Path, ints: np.ndarray, **encoder) -> Path:
    ints = np.asarray(ints)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(sphere_bytes(shorten_encode(ints, **encoder), len(ints), 1 if ints.ndim == 1 else ints.shape[1]))
    return path


def varied_signal(n_tail: int = 77) -> np.ndarray:
    """Blocks that make each predictor the cheapest: silence (ZERO), full-scale noise (DIFF0),
    a random walk (DIFF1), sines (DIFF2, DIFF3), and a last block shorter than the others."""
    rng = np.random.default_rng(3)
    t = np.arange(1024)
    parts = [np.zeros(512), rng.integers(-32768, 32768, 512),
             np.clip(np.cumsum(rng.normal(0, 300, 1024)), -32768, 32767),
             8000 * np.sin(0.01 * t), 20000 * np.sin(0.05 * t), rng.integers(-300, 300, n_tail)]
    ints = np.round(np.concatenate(parts)).astype(np.int64)
    ints[[700, 701]] = [-32768, 32767]  # the int16 extremes
    return ints


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("channels, nmean, file_type, verbatim", [
    (1, 4, TYPE_S16LH, b""),  # WSJ0's own settings: shorten 2 defaults, mono
    (1, 0, TYPE_S16HL, b""),  # no running mean: DIFF0 predicts 0
    (2, 4, TYPE_S16LH, b"RIFF, or any bytes the decoder skips"),
])
def test_shorten_sphere_decodes_bit_exactly(tmp_path, channels, nmean, file_type, verbatim):
    ints = varied_signal()
    if channels == 2:
        ints = np.stack([ints, -np.roll(ints, 300).clip(-32767)], axis=1)
    used: set[int] = set()
    path = write_shorten_sphere(tmp_path / "01ab0102.wv1", ints, nmean=nmean, file_type=file_type,
                                verbatim=verbatim, used=used)
    assert used == {0, 1, 2, 3, FN_ZERO, FN_BLOCKSIZE}  # every predictor, silence and a short last block
    samples, rate = read_sphere(path)
    assert rate == 16000 and samples.shape == (len(ints), channels)
    assert np.array_equal(samples * 2**15, ints.reshape(len(ints), channels))
    mono, _ = read_audio(path, expected_rate=16000)  # the pipeline's reader, by content not suffix
    assert np.array_equal(mono, samples.mean(axis=1))


def test_plain_pcm_sphere_either_byte_order(tmp_path):
    ints = varied_signal()
    for byte_format, dtype in (("01", "<i2"), ("10", ">i2")):
        path = tmp_path / f"pcm{byte_format}.wv1"
        path.write_bytes(sphere_bytes(ints.astype(dtype).tobytes(), len(ints), coding="pcm", byte_format=byte_format))
        samples, rate = read_audio(path)
        assert rate == 16000 and np.array_equal(samples * 2**15, ints)
    path = tmp_path / "libsndfile.wv1"  # libsndfile's own NIST header, field order and all
    sf.write(str(path), ints.astype(np.int16), 16000, format="NIST", subtype="PCM_16")
    assert read_sphere_header(path).sample_count == len(ints)
    assert np.array_equal(read_audio(path)[0] * 2**15, ints)


def refusal(path: Path) -> str:
    with pytest.raises(AudioError) as caught:
        read_audio(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message  # one line, naming the file
    return message


def test_a_truncated_shorten_body_is_refused(tmp_path):
    """FFmpeg decodes a cut-off file short without a word: the header's count catches it."""
    ints = varied_signal()
    body = shorten_encode(ints)
    path = tmp_path / "cut.wv1"
    path.write_bytes(sphere_bytes(body[: len(body) // 2], len(ints)))
    message = refusal(path)
    assert message.startswith(f"{path} is truncated: its NIST SPHERE header announces {len(ints)} samples "
                              "per channel, the body holds ")
    held = int(message.split("the body holds ")[1].split()[0])
    assert 0 < held < len(ints) and held % 256 == 0  # whole blocks decoded, then nothing
    path.write_bytes(sphere_bytes(bytes(200), len(ints)))  # not shorten at all: FFmpeg's own error
    assert f"its shorten body cannot be decoded after 0 of {len(ints)} samples per channel" in refusal(path)


def test_a_header_that_miscounts_is_refused(tmp_path):
    ints = varied_signal()
    body = shorten_encode(ints)
    path = tmp_path / "miscount.wv1"
    path.write_bytes(sphere_bytes(body, len(ints) - 1))
    assert refusal(path) == (f"{path}: its NIST SPHERE header announces {len(ints) - 1} samples per channel, "
                             f"the body holds {len(ints)} (a wrong header)")
    path.write_bytes(sphere_bytes(body, len(ints), channels=2))
    assert refusal(path) == f"{path}: its NIST SPHERE header announces 2 channels, the body holds 1 (a wrong header)"
    path.write_bytes(sphere_bytes(ints.astype("<i2").tobytes() + bytes(2), len(ints), coding="pcm"))
    assert refusal(path).endswith(f"the body holds {len(ints) + 1} (a wrong header)")


def test_bad_headers_and_unread_codings_are_refused(tmp_path):
    path = tmp_path / "bad.wv1"
    path.write_bytes(sphere_bytes(b"", 10, coding="pcm,embedded-wavpack"))
    assert "NIST SPHERE sample_coding 'pcm,embedded-wavpack' is not read here" in refusal(path)
    path.write_bytes(b"NIST_1A\n   1024\nsample_count -i 3\n".ljust(1024) + bytes(6))
    assert refusal(path) == f"{path}: bad NIST SPHERE header (no end_head within its 1024 bytes)"
    path.write_bytes(b"NIST_1A\n   1024\nsample_count -i 3\nchannel_count -i 1\nend_head\n".ljust(1024) + bytes(6))
    assert refusal(path) == f"{path}: bad NIST SPHERE header (no sample_rate)"
    path.write_bytes(b"NIST_1A\n   4096\nend_head\n")
    assert refusal(path) == f"{path}: bad NIST SPHERE header (header size 4096 does not fit the file)"


# --------------------------------------------------------------------------- WSJ0 from its raw files


def test_wsj0_corpus_reads_raw_wv1(tmp_path):
    ints = varied_signal()
    write_shorten_sphere(tmp_path / "wsj0" / "si_tr_s" / "011" / "011c0201.wv1", ints)
    (plan,) = plan_wsj0(str(tmp_path))
    ((samples, rate),) = list(plan.audio.clips(np.random.default_rng(0)))
    assert rate == 16000 and np.array_equal(samples * 2**15, ints)


def mix_outputs(wsj0_root: Path, lists: Path, activlev: Path, out: Path, modes: list[str],
                workers: int = 1) -> dict[Path, bytes]:
    """Mix the official-list stand-in from `wsj0_root`; every written file's bytes by relative path."""
    params = make_params(modes=modes, official_lists=str(lists), official_activlev=str(activlev),
                         wsj0_root=str(wsj0_root))
    run_mix(params, out.parent / "no-corpus", out, workers=workers)
    return {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.suffix in (".wav", ".csv")}


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> dict[str, Path]:
    """The mixing tests' stand-in WSJ0 twice: every utterance as `.wav`, and as shorten `.wv1`."""
    root = tmp_path_factory.mktemp("twins")
    lists, activlev = make_wsj0(root / "made")
    trees = {"lists": lists, "activlev": activlev, "wav": root / "wav", "raw": root / "raw"}
    for audio in sorted((root / "made" / "wsj0").rglob("*.*")):  # three .wav and one PCM SPHERE .wv1
        ints, rate = sf.read(str(audio), dtype="int16")
        assert rate == 16000
        relative = audio.relative_to(root / "made")
        (trees["wav"] / relative).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str((trees["wav"] / relative).with_suffix(".wav")), ints, rate, subtype="PCM_16")
        write_shorten_sphere((trees["raw"] / relative).with_suffix(".wv1"), ints)
    return trees


def test_wsj0_2mix_from_raw_wv1_equals_its_wav_twin(twins, tmp_path):
    assert not list(twins["raw"].rglob("*.wav")) and len(list(twins["raw"].rglob("*.wv1"))) == 4
    assert not list(twins["wav"].rglob("*.wv1"))
    raw = mix_outputs(twins["raw"], twins["lists"], twins["activlev"], tmp_path / "raw", ["min", "max"],
                      workers=2)  # PyAV decoding in worker processes too
    wav = mix_outputs(twins["wav"], twins["lists"], twins["activlev"], tmp_path / "wav", ["min", "max"])
    assert sum(p.suffix == ".wav" for p in raw) == 2 * 4 * 3  # modes x mixtures x (mix, s1, s2)
    assert raw == wav


def test_a_wav_beside_a_raw_wv1_wins(twins, tmp_path):
    """Speaker 01a (in every mixture) gets `.wav` copies half as loud as its `.wv1`: the mixtures
    are those of a raw tree holding the halved audio, not those of the `.wv1` files."""
    beside, halved = tmp_path / "beside", tmp_path / "halved"
    for tree in (beside, halved):
        shutil.copytree(twins["raw"], tree)
    for wv1 in sorted((twins["raw"] / "wsj0" / "si_tr_s" / "01a").glob("*.wv1")):
        samples, _ = read_sphere(wv1)
        quieter = np.round(samples[:, 0] * 2**14).astype(np.int16)
        relative = wv1.relative_to(twins["raw"])
        sf.write(str((beside / relative).with_suffix(".wav")), quieter, 16000, subtype="PCM_16")
        write_shorten_sphere(halved / relative, quieter)
    args = (twins["lists"], twins["activlev"])
    outputs = {name: mix_outputs(tree, *args, tmp_path / f"mix-{name}", ["min"])
               for name, tree in (("beside", beside), ("halved", halved), ("raw", twins["raw"]))}
    assert outputs["beside"] == outputs["halved"] != outputs["raw"]
