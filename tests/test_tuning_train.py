"""`emotion train`: argument parsing, freezing by name, augmentation seeding, and a real 1-epoch run that serves."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from emotion_service.audio import load_audio
from emotion_service.server.model import ModelBackend
from emotion_service.tuning.finetune import (
    ClipDataset,
    ModelArguments,
    apply_freezing,
    build_model,
    parse_args,
)
from tests.conftest import LABELS, recordings
from tests.plugin_helpers import emotion
from tests.tuning_helpers import TINY_CNN, TINY_CONFORMER, TINY_HUBERT, write_manifest

ROBUST_FRONT_END = {
    "voiced_threshold_db": 35,
    "normalize_level": True,
    "energy_floor_db": 50,
    "normalize_per_clip": True,
}


def test_unknown_flag_fails_at_once_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--data", "x", "--learning-rat", "1e-4"])
    assert exit_info.value.code == 2 and "--learning-rat" in capsys.readouterr().err


def test_flags_fill_the_dataclasses() -> None:
    model, data, training = parse_args(
        ["--data", "d", "--freeze", "top-n", "--trainable_layers", "1", "--learning_rate", "3e-4"]
    )
    assert (model.freeze, model.trainable_layers, data.data, training.learning_rate) == ("top-n", 1, "d", 3e-4)
    assert training.eval_strategy == "epoch" and training.metric_for_best_model == "uar"


TINY = {"hubert-small": TINY_HUBERT, "conformer-small": TINY_CONFORMER, "logmel-cnn": TINY_CNN}


def _trainable(policy: str, layers: int = 1, architecture: str = "hubert-small") -> set[str]:
    tiny = TINY[architecture]
    model, _ = build_model(ModelArguments(from_scratch=True, architecture=architecture, config_overrides=tiny), LABELS)
    apply_freezing(model, policy, layers)
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_freezing_policies_select_parameters_by_name() -> None:
    everything = _trainable("none")
    no_front_end = _trainable("feature-encoder")
    top = _trainable("top-n", 1)
    assert any(n.startswith("hubert.feature_extractor.") for n in everything)
    assert not any(n.startswith("hubert.feature_extractor.") for n in no_front_end)
    assert any(n.startswith("hubert.encoder.layers.1.") for n in top)
    assert not any(n.startswith(("hubert.encoder.layers.0.", "hubert.encoder.pos_conv")) for n in top)
    assert {"classifier.weight", "projector.weight"} <= top
    # Pretrained weights (not from scratch): auto keeps the conv front end frozen.
    assert _trainable("auto") == no_front_end


def test_freezing_a_model_without_a_conv_front_end() -> None:
    everything = _trainable("none", architecture="conformer-small")
    assert _trainable("auto", architecture="conformer-small") == everything
    top = _trainable("top-n", 1, architecture="conformer-small")
    assert any(n.startswith("wav2vec2_bert.encoder.layers.1.") for n in top)
    assert not any(n.startswith(("wav2vec2_bert.encoder.layers.0.", "wav2vec2_bert.feature_projection")) for n in top)
    with pytest.raises(ValueError, match="--freeze feature-encoder"):
        _trainable("feature-encoder", architecture="conformer-small")


def test_freezing_the_top_blocks_of_the_log_mel_cnn() -> None:
    assert _trainable("auto", architecture="logmel-cnn") == _trainable("none", architecture="logmel-cnn")
    top = _trainable("top-n", 1, architecture="logmel-cnn")
    assert any(n.startswith("cnn.encoder.layers.1.") for n in top) and "classifier.weight" in top
    assert not any(n.startswith(("cnn.encoder.layers.0.", "cnn.input_norm.")) for n in top)


def test_training_clips_augment_reproducibly_per_epoch() -> None:
    calls = []

    def augment(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        calls.append(1)
        return wave + rng.normal(size=len(wave)).astype(np.float32)

    dataset = ClipDataset([np.zeros(16000, np.float32)], [0], augment, augment_probability=1.0, max_samples=8000)
    first = dataset[0]["input_values"]
    assert len(first) == 8000 and np.array_equal(first, dataset[0]["input_values"])
    dataset.epoch = 1
    assert not np.array_equal(first, dataset[0]["input_values"])
    assert len(calls) == 3
    assert ClipDataset([np.ones(3, np.float32)], [2])[0]["labels"] == 2  # validation: no augment, no crop


def test_the_same_seed_trains_the_same_model(tmp_path) -> None:
    manifest = write_manifest(tmp_path)

    def train(name: str, seed: int) -> dict[str, np.ndarray]:
        argv = [
            "train", "--data", str(manifest), "--dataset", "csv", "--from_scratch", "--config_overrides", TINY_CNN,
            "--output_dir", str(tmp_path / name), "--num_train_epochs", "1", "--per_device_train_batch_size", "4",
            "--max_seconds", "2", "--val_fraction", "0.25", "--seed", str(seed), "--augment_probability", "1",
            "--report_to", "none", "--disable_tqdm", "true",
        ]  # fmt: skip
        assert emotion(*argv) == 0
        return load_file(tmp_path / name / "model.safetensors")

    first, again, other = train("a", 0), train("b", 0), train("c", 1)
    assert first.keys() == again.keys() == other.keys()
    # Initialisation, clip order, crops, augmentation and SpecAugment masks all follow --seed.
    assert all(np.array_equal(first[key], again[key]) for key in first)
    assert not all(np.array_equal(first[key], other[key]) for key in first)


def test_val_fraction_zero_trains_every_speaker_and_exports_the_last_epoch(tmp_path) -> None:
    output = tmp_path / "all"
    argv = [
        "train", "--data", str(write_manifest(tmp_path)), "--dataset", "csv", "--from_scratch",
        "--config_overrides", TINY_CNN, "--output_dir", str(output), "--num_train_epochs", "2",
        "--per_device_train_batch_size", "4", "--max_seconds", "2", "--val_fraction", "0",
        "--report_to", "none", "--disable_tqdm", "true",
    ]  # fmt: skip
    assert emotion(*argv) == 0
    card = (output / "README.md").read_text()
    assert f"{len(recordings())} training and 0 validation clips" in card
    assert "exported the last epoch" in card and "| uar |" not in card
    last = load_file(
        sorted(output.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1] / "model.safetensors"
    )
    exported = load_file(output / "model.safetensors")
    assert all(np.array_equal(exported[key], last[key]) for key in exported)


def test_train_one_epoch_exports_a_folder_the_server_loads(tmp_path) -> None:
    output = tmp_path / "model"
    argv = [
        "train", "--data", str(write_manifest(tmp_path)), "--dataset", "csv", "--from_scratch",
        "--config_overrides", TINY_CNN, "--output_dir", str(output), "--num_train_epochs", "1",
        "--per_device_train_batch_size", "4", "--max_seconds", "2", "--val_fraction", "0.25", "--disable_tqdm", "true",
        "--feature_overrides", json.dumps(ROBUST_FRONT_END),
    ]  # fmt: skip
    assert emotion(*argv) == 0
    # The front end trained with is saved beside the weights, and the server computes it.
    saved = json.loads((output / "preprocessor_config.json").read_text())
    assert {key: saved[key] for key in ROBUST_FRONT_END} == ROBUST_FRONT_END
    card = (output / "README.md").read_text()
    assert "| uar |" in card and "--from_scratch" in card
    assert list((output / "runs").rglob("events.out.tfevents.*")), "no TensorBoard log"
    assert list(output.glob("checkpoint-*"))
    backend = ModelBackend.load(str(output), device="cpu")
    assert backend.info.labels == LABELS and backend.info.architecture == "LogMelCNNForAudioClassification"
    first, second = load_audio(recordings()[0])[:24000], load_audio(recordings()[1])[:17000]
    probabilities = backend.predict([first])
    assert probabilities.shape == (1, 6) and np.isclose(probabilities.sum(), 1.0, atol=1e-5)
    # A trained model's batch norms hold real statistics: a padded batch still changes no answer.
    together = backend.predict([first, second])
    assert np.allclose(together, np.concatenate([probabilities, backend.predict([second])]), atol=1e-5)
    # Resume continues from the checkpoint: a second epoch on top of the first.
    assert (
        emotion(
            *argv[:-8],
            *["--num_train_epochs", "2", "--max_seconds", "2", "--resume", "true", "--disable_tqdm", "true"],
            *argv[-2:],  # the same front end
        )
        == 0
    )
    assert (output / "checkpoint-6").is_dir()


def test_an_unknown_feature_setting_fails_naming_it() -> None:
    args = ModelArguments(from_scratch=True, architecture="logmel-cnn", feature_overrides='{"voiced_treshold_db": 30}')
    with pytest.raises(ValueError, match="no setting.* voiced_treshold_db"):
        build_model(args, LABELS)


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_wandb_asked_but_missing_fails_before_reading_data(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert emotion("train", "--data", str(tmp_path / "missing"), "--report-to", "wandb") == 2
    assert "pip install wandb" in capsys.readouterr().err


def test_fine_tune_a_pretrained_folder_onto_a_new_label_set(
    tiny_model, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "four"
    argv = [
        "train", "--model", str(tiny_model), "--labels", "ANG,HAP,NEU,SAD", "--freeze", "top-n", "--trainable_layers", "1",
        "--data", str(write_manifest(tmp_path)), "--dataset", "csv", "--output_dir", str(output),
        "--num_train_epochs", "1", "--val_fraction", "0.25", "--report_to", "none", "--disable_tqdm", "true",
    ]  # fmt: skip
    assert emotion(*argv) == 0
    assert "skipped" in (output / "README.md").read_text()
    assert ModelBackend.load(str(output), device="cpu").info.labels == ("ANG", "HAP", "NEU", "SAD")
    # Evaluation follows the model's label set: the DIS and FEA clips are skipped and counted.
    capsys.readouterr()
    assert (
        emotion(
            *[
                "evaluate",
                str(output),
                str(tmp_path / "manifest.csv"),
                "--dataset",
                "csv",
                "--output",
                str(tmp_path / "e"),
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["skipped"] == 4


def test_the_augmentation_plugin_runs_through_the_hook_reproducibly() -> None:
    from emotion_service.plugins.builtin.augmentation import Augmentation, AugmentationConfig
    from emotion_service.plugins.manager import build_host

    host = build_host(
        {"augmentation": Augmentation(AugmentationConfig(noise_p=1.0, pitch_p=0.0, stretch_p=0.0, babble_p=0.0))}
    )
    wave = load_audio(recordings()[0])[:16000]
    dataset = ClipDataset([wave], [0], lambda w, rng: host.augment(w, 16000, rng), augment_probability=1.0)
    first = dataset[0]["input_values"]
    assert not np.array_equal(first, wave) and np.array_equal(first, dataset[0]["input_values"])


def test_the_bundled_model_recipe_is_valid_emotion_train_flags(tmp_path) -> None:
    from emotion_service.tuning.bundled import TEST_SPEAKERS, train_flags

    model, data, training = parse_args(train_flags(tmp_path / "ravdess", tmp_path / "out", epochs=40, seed=0))
    _, extractor = build_model(model, LABELS)
    assert extractor.robust and extractor.voiced_threshold_db is not None
    assert (model.from_scratch, model.architecture, data.dataset) == (True, "logmel-cnn", "ravdess")
    # The RAVDESS test actors are never trained on or used to pick the epoch.
    assert data.exclude_speakers == TEST_SPEAKERS == "19-24" and not data.random_split
    # Every other actor trains (the recipe was chosen on a speaker split); the last epoch is exported.
    assert data.val_fraction == 0 and training.num_train_epochs == 40


def test_the_log_mel_cnn_serves_mixed_lengths_in_one_batch(tmp_path) -> None:
    import torch

    model, feature_extractor = build_model(
        ModelArguments(from_scratch=True, architecture="logmel-cnn", config_overrides=TINY_CNN), LABELS
    )
    model.save_pretrained(tmp_path)
    feature_extractor.save_pretrained(tmp_path)
    # Loaded through the Auto classes like any checkpoint: the server does not know the architecture.
    backend = ModelBackend.load(str(tmp_path), device="cpu")
    backend.warm_up()
    assert backend.info.architecture == "LogMelCNNForAudioClassification" and backend.pads_mixed_lengths
    assert type(backend.feature_extractor).__name__ == "LogMelFeatureExtractor"
    long, short = load_audio(recordings()[0])[:40000], load_audio(recordings()[1])[:9000]
    alone = np.concatenate([backend.predict([long]), backend.predict([short])])
    assert np.allclose(backend.predict([long, short]), alone, atol=1e-5)
    assert backend.predict([short[:1600]]).shape == (1, 6)  # 0.1 s (the server's minimum): under the stack's stride
    # SpecAugment masks apply in training only, and gradients reach the first block.
    inputs = feature_extractor([long], sampling_rate=16000, return_tensors="pt", return_attention_mask=True)
    model.train()
    torch.manual_seed(0)
    output = model(**inputs, labels=torch.tensor([0]))
    output.loss.backward()
    assert model.cnn.encoder.layers[0].conv.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert not torch.allclose(model(**inputs).logits, output.logits.detach())


def test_excluded_speakers_are_never_trained_on(tmp_path) -> None:
    # A run told to exclude s0 and s1 trains exactly as a run whose corpus never had them: same
    # clips, same seed, the same weights bit for bit. A run that read them would differ.
    manifest = write_manifest(tmp_path)
    rows = manifest.read_text().splitlines()
    kept = tmp_path / "without-s0-s1.csv"
    kept.write_text("\n".join([rows[0], *(row for row in rows[1:] if not row.endswith((",s0", ",s1")))]) + "\n")

    def train(name: str, data: str, *extra: str) -> dict[str, np.ndarray]:
        argv = [
            "train", "--data", data, "--dataset", "csv", "--from_scratch", "--config_overrides", TINY_CNN,
            "--output_dir", str(tmp_path / name), "--num_train_epochs", "1", "--per_device_train_batch_size", "4",
            "--max_seconds", "2", "--val_fraction", "0", "--augment_probability", "1",
            "--report_to", "none", "--disable_tqdm", "true", *extra,
        ]  # fmt: skip
        assert emotion(*argv) == 0
        return load_file(tmp_path / name / "model.safetensors")

    excluded = train("excluded", str(manifest), "--exclude_speakers", "s0,s1")
    never_had = train("never-had", str(kept))
    everyone = train("everyone", str(manifest))
    assert excluded.keys() == never_had.keys()
    assert all(np.array_equal(excluded[key], never_had[key]) for key in excluded), (
        "the excluded speakers were trained on"
    )
    assert not all(np.array_equal(excluded[key], everyone[key]) for key in excluded)
    half = len(recordings()) // 2
    card = " ".join((tmp_path / "excluded" / "README.md").read_text().split())
    assert f"{half} training and 0 validation clips" in card and f"{half} of excluded speakers (s0,s1)" in card
