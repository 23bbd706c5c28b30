"""Recipe librimix: Libri2Mix / Libri3Mix built from metadata on a stand-in LibriSpeech (and WHAM!
noise) that the tests write, checked against the reference generator's arithmetic (SOURCE.md in
../shared/librimix), plus the official metadata itself where it is shared beside the repository."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from conftest import tree_digest
from dpcl.cli import main
from dpcl.config import ConfigError, Params, params_from_dict
from dpcl.librimix import SUBSETS, LibriMixError, extend_noise, read_metadata, to_pcm16
from dpcl.mixing import run_mix
from dpcl.report import pair_kinds

SHARED = Path(__file__).resolve().parents[2] / "shared" / "librimix"
ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("tr", "cv", "tt")
SPEAKERS = {"19": "F", "26": "M", "32": "F", "39": "M"}  # LibriSpeech-like IDs and their sex
NOISE_SECONDS = {"tr": 2.0, "cv": 2.0, "tt": 0.6}  # tt's noise is shorter than its speech: extended


def write_flac(path: Path, seconds: float, rng: np.random.Generator) -> None:
    """A 16 kHz mono flac: a few harmonics in noise, quiet enough that listed gains cannot clip."""
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    f0 = rng.uniform(100, 250)
    voice = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) / k for k in range(1, 4))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), 0.1 * voice + 0.02 * rng.standard_normal(n), 16000, format="FLAC", subtype="PCM_16")


def make_librimix(root: Path, n_speakers: int = 2, per_split: int = 3, seed: int = 0) -> dict[str, Path]:
    """Metadata in the official format, the flacs it lists and two-channel WHAM!-like noise."""
    rng = np.random.default_rng(seed)
    metadata, librispeech, wham = root / "metadata", root / "LibriSpeech", root / "wham_noise"
    metadata.mkdir(parents=True)
    speakers = list(SPEAKERS)
    for split, subset in SUBSETS.items():
        rows, info = [], []
        for k in range(per_split):
            chosen = [speakers[(k + j) % len(speakers)] for j in range(n_speakers)]
            paths = [f"{subset}/{s}/{100 + k}/{s}-{100 + k}-{j:04d}.flac" for j, s in enumerate(chosen)]
            for path in paths:
                write_flac(librispeech / path, rng.uniform(0.7, 1.3), rng)
            noise = f"{split}/noise_{k}.wav"
            (wham / split).mkdir(parents=True, exist_ok=True)
            sf.write(str(wham / noise), 0.05 * rng.standard_normal((int(NOISE_SECONDS[split] * 16000), 2)), 16000)
            mixture_id = "_".join(Path(p).stem for p in paths)
            gains = rng.uniform(0.3, 1.6, n_speakers)
            rows.append([mixture_id, *(v for p, g in zip(paths, gains) for v in (p, repr(float(g)))), noise,
                         repr(float(rng.uniform(0.5, 1.5)))])
            info.append([mixture_id, *(v for s in chosen for v in (f"{s}.0", SPEAKERS[s]))])
        numbered = range(1, n_speakers + 1)
        header = ["mixture_ID", *(f"source_{i}_{c}" for i in numbered for c in ("path", "gain")), "noise_path",
                  "noise_gain"]
        info_header = ["mixture_ID", *(f"speaker_{i}_{c}" for i in numbered for c in ("ID", "sex"))]
        stem = metadata / f"libri{n_speakers}mix_{subset}"
        for path, head, body in ((f"{stem}.csv", header, rows), (f"{stem}_info.csv", info_header, info)):
            with open(path, "w", newline="") as handle:
                csv.writer(handle).writerows([head, *body])
    return {"metadata": metadata, "librispeech": librispeech, "wham": wham}


def librimix_params(tree: dict[str, Path], rate: int = 8000, noisy: tuple[str, ...] = (), **mix) -> Params:
    mix = {"recipe": "librimix", "librimix_metadata": str(tree["metadata"]),
           "librispeech_root": str(tree["librispeech"]), "modes": ["min", "max"], **mix}
    if noisy:
        mix.update(librimix_noisy=list(noisy), wham_root=str(tree["wham"]))
    return params_from_dict({"corpus": {"sample_rate": rate}, "mix": mix, "features": {"mode": mix["modes"][0]}})


def soundfile_pcm16(samples: np.ndarray, rate: int) -> np.ndarray:
    """What the reference writes: soundfile's default PCM_16 wav, read back as integers."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV")
    buffer.seek(0)
    return sf.read(buffer, dtype="int16")[0].astype(np.int64)


def read_int(path: Path, rate: int) -> np.ndarray:
    samples, file_rate = sf.read(str(path), dtype="int16")
    assert file_rate == rate
    return samples.astype(np.int64)


def reference_signals(tree: dict[str, Path], row, rate: int, mode: str, noise: bool = False) -> list[np.ndarray]:
    """SOURCE.md's steps 1-3, written out: float32 flac x listed gain, resample_poly, min/max length."""
    speech = [sf.read(str(tree["librispeech"] / p), dtype="float32")[0] for p in row.sources]
    signals, gains = list(speech), list(row.gains)
    if noise:
        longest = max(len(x) for x in speech)
        samples = sf.read(str(tree["wham"] / row.noise), dtype="float32", stop=longest)[0][:, 0]
        signals.append(samples if len(samples) == longest else extend_noise(samples, longest))
        gains.append(row.noise_gain)
    scaled = [resample_poly(x * g, rate, 16000) for x, g in zip(signals, gains)]
    length = (min if mode == "min" else max)(len(x) for x in scaled)
    return [np.pad(x[:length], (0, length - len(x[:length]))) for x in scaled]


# --------------------------------------------------------------------------- the recipe


@pytest.mark.parametrize("rate", [8000, 16000])
def test_clean_mixtures_are_the_reference_generators(tmp_path, rate):
    tree = make_librimix(tmp_path)
    run_mix(librimix_params(tree, rate), None, tmp_path / "mix")
    for split in SPLITS:
        rows = read_metadata(tree["metadata"], 2, split)
        for mode in ("min", "max"):
            folder = tmp_path / "mix" / mode / split
            table = pd.read_csv(folder / "mixtures.csv")
            assert table["name"].tolist() == [f"{r.mixture_id}.wav" for r in rows]  # files named by mixture_ID
            for row in rows:
                name = f"{row.mixture_id}.wav"
                expected = reference_signals(tree, row, rate, mode)
                s1, s2, mix = (read_int(folder / d / name, rate) for d in ("s1", "s2", "mix"))
                # each source: its listed gain times the resampled flac, written as soundfile writes it
                assert np.array_equal(s1, soundfile_pcm16(expected[0], rate))
                assert np.array_equal(s2, soundfile_pcm16(expected[1], rate))
                assert np.array_equal(mix, soundfile_pcm16(expected[0] + expected[1], rate))  # plain sum
                assert np.max(np.abs(mix - s1 - s2)) <= 1  # three separate roundings
                lengths = [-(-len(sf.read(str(tree["librispeech"] / p))[0]) * rate // 16000) for p in row.sources]
                assert len(mix) == (min if mode == "min" else max)(lengths)
                assert table.set_index("name").loc[name, "n_samples"] == len(mix)
            assert not (folder / "noise").exists() and not (folder / "mix_both").exists()
    summary = json.loads((tmp_path / "mix" / "summary.json").read_text())
    assert summary["dataset"] == "Libri2Mix" and summary["splits"]["tt"]["max"]["mixtures"] == 3
    assert set(summary["metadata"]) == {f"libri2mix_{s}{i}.csv" for s in SUBSETS.values() for i in ("", "_info")}


def test_three_speakers_and_the_report_columns(tmp_path):
    tree = make_librimix(tmp_path, n_speakers=3, per_split=2)
    run_mix(librimix_params(tree, n_speakers=3, modes=["min"]), None, tmp_path / "mix")
    folder = tmp_path / "mix" / "min" / "tt"
    table = pd.read_csv(folder / "mixtures.csv", dtype={"speaker_1": str})
    for row in table.itertuples():
        s1, s2, s3, mix = (read_int(folder / d / row.name, 8000) for d in ("s1", "s2", "s3", "mix"))
        assert np.max(np.abs(mix - s1 - s2 - s3)) <= 2
    # sex from the _info.csv files, in the columns the report's per-sex table reads
    info = pd.read_csv(tree["metadata"] / "libri3mix_test-clean_info.csv")
    assert table["sex_1"].tolist() == info["speaker_1_sex"].tolist()
    assert table["speaker_1"].tolist() == [str(int(s)) for s in info["speaker_1_ID"]]
    kinds = pair_kinds(table)
    assert set(kinds["kind_pair"]) == {"real+real"}
    assert kinds["sex_pair"].tolist() == ["same sex" if a == b else "different sex"
                                          for a, b in zip(info["speaker_1_sex"], info["speaker_2_sex"])]


def test_noisy_variants_with_wham_noise(tmp_path):
    tree = make_librimix(tmp_path, per_split=2)
    run_mix(librimix_params(tree, noisy=("mix_both", "mix_single"), modes=["max"]), None, tmp_path / "mix")
    for split in SPLITS:
        folder = tmp_path / "mix" / "max" / split
        for row in read_metadata(tree["metadata"], 2, split):
            name = f"{row.mixture_id}.wav"
            expected = reference_signals(tree, row, 8000, "max", noise=True)
            s1, s2, noise, clean, both, single = (read_int(folder / d / name, 8000) for d in
                                                  ("s1", "s2", "noise", "mix", "mix_both", "mix_single"))
            assert np.array_equal(noise, soundfile_pcm16(expected[2], 8000))
            assert np.max(np.abs(clean - s1 - s2)) <= 1
            assert np.max(np.abs(both - s1 - s2 - noise)) <= 2
            assert np.max(np.abs(single - s1 - noise)) <= 1
            assert np.array_equal(s1, soundfile_pcm16(expected[0], 8000))  # the noise changes no source
    assert "noise_gain_linear" in pd.read_csv(tmp_path / "mix" / "max" / "tt" / "mixtures.csv")


def test_worker_processes_write_the_same_files(tmp_path):
    tree = make_librimix(tmp_path, per_split=2)
    params = librimix_params(tree, noisy=("mix_both",), modes=["min"])
    run_mix(params, None, tmp_path / "serial", workers=1)
    run_mix(params, None, tmp_path / "parallel", workers=2)
    assert tree_digest(tmp_path / "serial") == tree_digest(tmp_path / "parallel")


def test_extend_noise_crossfades_copies():
    noise = np.random.default_rng(1).standard_normal(20000).astype(np.float32)
    out = extend_noise(noise, 25000)
    assert len(out) == 25000 and out.dtype == np.float64
    window = np.hanning(16001)
    cut = 20000 - 8001
    assert np.array_equal(out[:cut], noise[:cut])
    assert np.allclose(out[cut:20000], noise[cut:] * window[8000::-1] + noise[:8001] * window[:8001])
    assert np.array_equal(out[20000:], noise[8001:13001])  # the copy goes on where its fade-in ended
    with pytest.raises(ValueError, match="too short"):
        extend_noise(noise[:8001], 20000)


def test_pcm16_is_soundfiles_conversion():
    """soundfile (clipping on) floors x * 2^15 after rounding x * 2^31: ties, boundaries and clips."""
    rng = np.random.default_rng(2)
    k = np.arange(-40, 40) * 65536.0
    edges = np.concatenate([(k - 0.5) / 2**31, (k - 0.25) / 2**31, (k + 0.5) / 2**31, (k + 0.5) / 0x7FFF / 65536])
    for dtype in (np.float32, np.float64):
        samples = np.concatenate([rng.uniform(-1.2, 1.2, 5000), edges, [1.0, -1.0, 0.0, 1 - 2**-24, -1 - 2**-20]])
        samples = samples.astype(dtype)
        assert np.array_equal(to_pcm16(samples).astype(np.int64), soundfile_pcm16(samples, 8000))


# --------------------------------------------------------------------------- refusals


def test_a_missing_flac_is_named_and_nothing_is_half_written(tmp_path):
    tree = make_librimix(tmp_path)
    params = librimix_params(tree)
    run_mix(params, None, tmp_path / "mix")
    before = tree_digest(tmp_path / "mix")
    row = read_metadata(tree["metadata"], 2, "cv")[1]
    (tree["librispeech"] / row.sources[1]).unlink()
    with pytest.raises(LibriMixError, match=rf"file not found: .*{row.sources[1]} \(source_2_path of mixture "
                                            rf"{row.mixture_id}, line 3 of .*libri2mix_dev-clean.csv\)"):
        run_mix(params, None, tmp_path / "mix")
    assert tree_digest(tmp_path / "mix") == before  # the earlier output stands, untouched
    with pytest.raises(LibriMixError, match="source_2_path"):
        run_mix(params, None, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists() and not (tmp_path / "fresh.partial").exists()


def test_an_unreadable_flac_midway_leaves_no_partial_output(tmp_path):
    tree = make_librimix(tmp_path)
    row = read_metadata(tree["metadata"], 2, "tt")[2]  # the last split mixed: tr and cv are written by then
    (tree["librispeech"] / row.sources[0]).write_bytes(b"not a flac")
    with pytest.raises(LibriMixError, match=rf"cannot read .*{row.sources[0]} \(source_1_path of mixture"):
        run_mix(librimix_params(tree), None, tmp_path / "mix")
    assert not (tmp_path / "mix").exists() and not (tmp_path / "mix.partial").exists()


def test_a_missing_noise_file_is_refused(tmp_path):
    tree = make_librimix(tmp_path, per_split=1)
    (tree["wham"] / "tt" / "noise_0.wav").unlink()
    with pytest.raises(LibriMixError, match=r"noise_0.wav \(noise_path of mixture .*mix.wham_root must hold"):
        run_mix(librimix_params(tree, noisy=("mix_both",)), None, tmp_path / "mix")
    assert not (tmp_path / "mix").exists()


def test_a_metadata_folder_without_the_expected_csvs(tmp_path):
    tree = make_librimix(tmp_path, per_split=1)
    with pytest.raises(LibriMixError, match=r"libri3mix_train-clean-100.csv not found .*n_speakers 3.*"
                                            r"holds libri2mix_dev-clean.csv"):
        run_mix(librimix_params(tree, n_speakers=3), None, tmp_path / "mix")
    (tree["metadata"] / "libri2mix_test-clean_info.csv").unlink()
    with pytest.raises(LibriMixError, match="libri2mix_test-clean_info.csv not found"):
        run_mix(librimix_params(tree), None, tmp_path / "mix")
    assert not (tmp_path / "mix").exists()


@pytest.mark.parametrize("mix, key, fragment", [
    ({"librimix_noisy": ["mix_both"]}, "mix.librimix_noisy", "need WHAM! noise: set mix.wham_root"),
    ({"wham_root": "/wham"}, "mix.wham_root", "list mix_both and/or mix_single"),
    ({"librispeech_root": None}, "mix.librispeech_root", "needs the folder holding LibriSpeech"),
    ({"librimix_metadata": None}, "mix.librimix_metadata", "needs the folder of libri2mix_"),
    ({"n_speakers": 4}, "mix.n_speakers", "must be 2 or 3"),
    ({"official_lists": "/lists", "official_activlev": "/a", "wsj0_root": "/w"}, "mix.official_lists",
     "recipe librimix reads librimix_metadata"),
    ({"recipe": "wsj0-2mix"}, "mix.librimix_metadata", "read only by recipe librimix"),
])
def test_config_refusals_name_the_key(mix, key, fragment):
    data = {"recipe": "librimix", "librimix_metadata": "/meta", "librispeech_root": "/ls", **mix}
    with pytest.raises(ConfigError, match=fragment) as caught:
        params_from_dict({"mix": data})
    assert caught.value.key == key


def test_dynamic_mixing_is_refused_with_librimix():
    mix = {"recipe": "librimix", "librimix_metadata": "/meta", "librispeech_root": "/ls"}
    with pytest.raises(ConfigError, match="not LibriSpeech") as caught:
        params_from_dict({"mix": mix, "dpcl": {"training": {"dynamic_mixing": {"enabled": True}}}})
    assert caught.value.key == "dpcl.training.dynamic_mixing.enabled"


def test_cli_mixes_without_a_corpus_and_errors_in_one_line(tmp_path, capsys):
    tree = make_librimix(tmp_path, per_split=1)
    profile = tmp_path / "librimix.yaml"
    profile.write_text(f"mix:\n  recipe: librimix\n  librimix_metadata: {tree['metadata']}\n"
                       f"  librispeech_root: {tree['librispeech']}\n")
    args = ["mix", "--params", str(ROOT / "params.yaml"), "--params", str(profile), "--out", str(tmp_path / "mix")]
    assert main(args) == 0
    assert (tmp_path / "mix" / "min" / "tt" / "mixtures.csv").is_file()
    row = read_metadata(tree["metadata"], 2, "tr")[0]
    (tree["librispeech"] / row.sources[0]).unlink()
    capsys.readouterr()
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("dpcl mix: error: file not found: ") and row.sources[0] in error
    assert "\n" not in error


# --------------------------------------------------------------------------- the official metadata


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"LibriMix metadata not found at {SHARED}")
@pytest.mark.parametrize("n, counts", [(2, (13900, 3000, 3000)), (3, (9300, 3000, 3000))])
def test_official_metadata_parses(n, counts):
    folder = SHARED / f"Libri{n}Mix"
    rows = {split: read_metadata(folder, n, split) for split in SPLITS}
    assert tuple(len(rows[s]) for s in SPLITS) == counts
    speakers = {s: {spk for r in rows[s] for spk in r.speakers} for s in SPLITS}
    assert [len(speakers[s]) for s in SPLITS] == [251, 40, 40]
    for split in SPLITS:
        assert len({r.mixture_id for r in rows[split]}) == len(rows[split])
        for row in rows[split]:
            assert len(set(row.speakers)) == n and set(row.sexes) <= {"M", "F"}
            assert [p.split("/")[:2] for p in row.sources] == [[SUBSETS[split], s] for s in row.speakers]
    first = rows["tt"][0]
    assert first.mixture_id == ("4077-13754-0001_5142-33396-0065" if n == 2 else
                                "4077-13754-0001_5142-33396-0065_5683-32866-0012")
    assert first.sexes[:2] == ("M", "F")
