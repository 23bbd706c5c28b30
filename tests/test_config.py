"""params.yaml is validated once: every mistake is named by its key, nothing passes silently."""

from pathlib import Path

import pytest

from dpcl.cli import main
from dpcl.config import ConfigError, Params, deep_merge, load_params, params_from_dict, params_to_dict

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_params_and_profiles_are_valid():
    default = load_params([ROOT / "params.yaml"])
    assert default.features.n_bins == 129
    assert default.corpus.sample_rate == 8000
    for profile in sorted((ROOT / "profiles").glob("*.yaml")):
        merged = load_params([ROOT / "params.yaml", profile])
        assert isinstance(merged, Params)
    ci = load_params([ROOT / "params.yaml", ROOT / "profiles" / "ci.yaml"])
    assert set(ci.corpus.sources) == {"espeak", "flite"}


def test_params_yaml_states_every_key():
    """params.yaml is the single place a user reads and edits: it must spell out every key."""
    import yaml

    stated = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert stated == params_to_dict(load_params([ROOT / "params.yaml"]))


@pytest.mark.parametrize(
    "data, key, fragment",
    [
        ({"corpus": {"sourcs": ["espeak"]}}, "corpus.sourcs", "did you mean 'sources'"),
        ({"mixx": {}}, "mixx", "did you mean 'mix'"),
        ({"mix": {"counts": {"tt": 0}}}, "mix.counts.tt", ">= 1"),
        ({"features": {"n_fft": "256"}}, "features.n_fft", "integer"),
        ({"features": {"n_fft": 300}}, "features.n_fft", "power of two"),
        ({"corpus": {"sources": ["espek"]}}, "corpus.sources", "did you mean 'espeak'"),
        ({"corpus": {"sample_rate": 44100}}, "corpus.sample_rate", "8000 or 16000"),
        ({"corpus": {"synthesis": {"espeak_speed": 5}}}, "corpus.synthesis.espeak_speed", "[80, 450]"),
        ({"mix": {"modes": ["mid"]}}, "mix.modes[0]", "allowed: min, max"),
        ({"mix": {"modes": ["max"]}}, "features.mode", "not among mix.modes"),
        ({"mix": {"max_gain_db": True}}, "mix.max_gain_db", "number"),
        ({"corpus": {"sources": ["folder"]}}, "corpus.folder_root", "needs folder_root"),
    ],
)
def test_mistakes_name_the_key(data, key, fragment):
    with pytest.raises(ConfigError) as caught:
        params_from_dict(data)
    assert caught.value.key == key
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(key)


@pytest.mark.parametrize("text, key, more", [
    ("", "corpus", "and 8 more: mix, features, dpcl"),
    ("# only a comment\n", "corpus", "and 8 more"),
    ("features:\n  n_fft: 256\n", "corpus", "features.mode"),
])
def test_a_params_file_that_leaves_a_key_out_stops_with_its_name(tmp_path, capsys, text, key, more):
    # The code's own defaults never stand in for params.yaml: one home for every default.
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_params([path])
    assert caught.value.key == key and more in str(caught.value) and "not stated in" in str(caught.value)
    assert main(["params", "--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {key}: not stated in" in err and "Traceback" not in err


def test_a_profile_states_only_what_it_changes(tmp_path):
    profile = tmp_path / "profile.yaml"
    profile.write_text("dpcl:\n  training:\n    phases:\n      - {chunk_frames: 50, epochs: 1, batch_size: 2}\n")
    with pytest.raises(ConfigError) as caught:  # a phase is a record: each of its keys is stated
        load_params([ROOT / "params.yaml", profile])
    assert caught.value.key == "dpcl.training.phases[0].learning_rate"
    profile.write_text("mix:\n  counts: {tr: 10}\n")
    assert load_params([ROOT / "params.yaml", profile]).mix.counts.cv == 300


def test_profiles_merge_deeply():
    merged = deep_merge({"mix": {"counts": {"tr": 5, "cv": 2}, "seed": 1}}, {"mix": {"counts": {"tr": 7}}})
    assert merged == {"mix": {"counts": {"tr": 7, "cv": 2}, "seed": 1}}


def test_cli_reports_a_params_typo_without_traceback(tmp_path, capsys):
    bad = tmp_path / "params.yaml"
    bad.write_text("features:\n  hop_lenght: 64\n")
    assert main(["features", "--params", str(bad), "--mix", str(tmp_path), "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "features.hop_lenght: unknown key; did you mean 'hop_length'?" in err
    assert "Traceback" not in err
    assert not (tmp_path / "f").exists()


def test_missing_params_file_is_reported(tmp_path, capsys):
    assert main(["params", "--params", str(tmp_path / "nope.yaml")]) == 2
    assert "params file not found" in capsys.readouterr().err


@pytest.mark.parametrize("text, key, lines", [
    ("features:\n  n_fft: 256\nmix:\n  seed: 1\nfeatures:\n  n_fft: 512\n", "features", "1 and 5"),
    ("features:\n  n_fft: 256\n  n_fft: 128\n", "n_fft", "2 and 3"),
])
def test_a_key_stated_twice_is_refused_with_both_lines(tmp_path, capsys, text, key, lines):
    # Plain YAML lets the second silently win; the reader of the file would believe the first.
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"{key!r} appears twice in one mapping, on lines {lines}"):
        load_params([path])
    assert main(["params", "--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"on lines {lines}" in err and "Traceback" not in err


def test_a_closed_pipe_ends_dpcl_params_quietly():
    # `dpcl params | head`: the reader is gone before dpcl writes (closed before its imports are
    # done), so the first write meets a closed pipe; no BrokenPipeError traceback.
    import subprocess
    import sys

    script = "import sys; from dpcl.cli import main; sys.exit(main(['params']))"
    writer = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    writer.stdout.close()
    err = writer.stderr.read()
    writer.wait(timeout=120)
    assert writer.returncode == 0
    assert b"Traceback" not in err and b"BrokenPipe" not in err


def test_a_config_error_crosses_a_process_boundary_whole():
    # A worker pool pickles the error it raised; the default pickling lost the key and broke the pool.
    import pickle

    error = pickle.loads(pickle.dumps(ConfigError("mix.counts.tt", "must be >= 1, got 0")))
    assert (error.key, error.detail, str(error)) == ("mix.counts.tt", "must be >= 1, got 0",
                                                     "mix.counts.tt: must be >= 1, got 0")
