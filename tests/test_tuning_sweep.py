"""`emotion tune`: the search-space file, and a real local Ray sweep of two tiny trials whose best model serves."""

from __future__ import annotations

from pathlib import Path

import pytest

from emotion_service.audio import load_audio
from emotion_service.server.model import ModelBackend
from emotion_service.tuning.sweep import load_sweep_file, run_sweep, tune_space
from tests.conftest import LABELS, recordings
from tests.tuning_helpers import TINY_CNN, write_manifest

# Starts Ray: `make test` runs this module after the rest, in one process (Makefile TEST_WORKERS).
pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[1]


def test_example_search_space_parses() -> None:
    sweep = load_sweep_file(REPO / "tuning" / "search_spaces" / "small.toml")
    assert sweep.train["exclude_speakers"] == "19-24"
    assert set(tune_space(sweep.search_space)) == set(sweep.search_space)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[search_space]\nlearning_rat = { uniform = [0.1, 0.2] }\n", "learning_rat"),
        ("[tune]\nnum_sample = 2\n[search_space]\nlearning_rate = 1e-4\n", "num_sample"),
        ("[search_spaces]\nlearning_rate = 1e-4\n", "search_spaces"),
        ("[train]\nval_fraction = 0\n[search_space]\nlearning_rate = 1e-4\n", "val_fraction"),
    ],
)
def test_search_space_mistakes_are_named(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(ValueError, match=problem):
        load_sweep_file(tmp_path / "s.toml")


def test_unknown_sampler_is_named() -> None:
    with pytest.raises(ValueError, match="learning_rate"):
        tune_space({"learning_rate": {"normal": [0, 1]}})


@pytest.mark.slow
def test_local_sweep_exports_a_servable_best_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.toml"
    space.write_text(
        f"""
[train]
dataset = "csv"
data = "{write_manifest(tmp_path)}"
from_scratch = true
config_overrides = '{TINY_CNN}'
num_train_epochs = 2
max_seconds = 2.0
val_fraction = 0.25
per_device_train_batch_size = 4
report_to = ["none"]

[tune]
num_samples = 2
cpus_per_trial = 1
output_dir = "{tmp_path / "sweep"}"

[search_space]
learning_rate = {{ loguniform = [1e-4, 1e-3] }}
augment_probability = {{ uniform = [0.0, 0.5] }}
"""
    )
    best = run_sweep(load_sweep_file(space), num_cpus=2, command="emotion tune --search-space space.toml")
    table = capsys.readouterr().out
    assert "eval_uar" in table and "learning_rate" in table
    assert (best / "README.md").read_text().count("learning_rate") == 1
    backend = ModelBackend.load(str(best), device="cpu")
    assert backend.info.labels == LABELS
    assert backend.predict([load_audio(recordings()[0])]).shape == (1, 6)


def test_tune_cli_reports_a_bad_file_before_starting_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.plugin_helpers import emotion

    (tmp_path / "s.toml").write_text("[search_space]\nlearning_rat = 1e-4\n")
    assert emotion("tune", "--search-space", str(tmp_path / "s.toml")) == 2
    assert "learning_rat" in capsys.readouterr().err
