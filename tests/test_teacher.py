"""The speaker-encoder teacher (`emotion train --teacher speaker-encoder`): the real pretrained encoder
from the resemblyzer wheel, out-of-fold soft labels, and the distillation term of the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from emotion_service.audio import load_audio
from emotion_service.speaker_encoder import SpeakerEncoder
from emotion_service.tuning.finetune import WeightedTrainer, parse_args, parse_dict
from emotion_service.tuning.teacher import soft_labels
from tests.conftest import recordings
from tests.plugin_helpers import emotion
from tests.tuning_helpers import TINY_CNN, write_manifest


@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    return SpeakerEncoder.from_wheel()


def test_the_pretrained_encoder_loads_from_the_wheel_and_ignores_level(encoder: SpeakerEncoder) -> None:
    # Actor 21 twice (two sentences), then actor 20.
    clips = [load_audio(path) for path in recordings()[:3]]
    quiet = clips[0] * 10 ** (-25 / 20)
    embeddings = encoder.embed([*clips, quiet, clips[0][:4000]])  # the last shorter than one partial
    assert embeddings.shape == (5, 256)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    assert embeddings[0] @ embeddings[3] > 0.999  # the same clip 25 dB quieter
    # Trained weights, not a random LSTM (whose embeddings of any two clips agree to 0.999): the
    # same speaker's two sentences lie clearly closer than another speaker's.
    assert embeddings[0] @ embeddings[1] - embeddings[0] @ embeddings[2] > 0.2


def test_soft_labels_come_from_a_probe_that_never_saw_the_speaker() -> None:
    # Each speaker's clips share a private direction that gives away their labels: a probe that saw
    # the speaker would score near 100 %; out of fold it can only guess.
    rng = np.random.default_rng(0)
    speakers = [f"s{i // 20}" for i in range(120)]
    labels = rng.integers(0, 3, 120)
    embeddings = rng.normal(size=(120, 64)) * 0.1
    for i, speaker in enumerate(speakers):
        embeddings[i, int(speaker[1:]) * 10 + labels[i]] += 3.0
    probabilities = soft_labels(embeddings, labels.tolist(), speakers, classes=4)
    assert probabilities.shape == (120, 4)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    assert (probabilities[:, 3] == 0).all()  # a class no training clip has gets no probability
    assert (probabilities.argmax(1) == labels).mean() < 0.6


def test_distillation_mixes_the_teacher_into_the_loss(tmp_path) -> None:
    _, _, arguments = parse_args(
        ["--data", "x", "--output_dir", str(tmp_path), "--teacher", "speaker-encoder", "--distillation_weight", "0.25"]
    )
    trainer = WeightedTrainer.__new__(WeightedTrainer)
    trainer.args, trainer.class_weights = arguments, None

    class Logits(torch.nn.Module):
        def forward(self, input_features: torch.Tensor) -> torch.nn.Module:
            return type("Out", (), {"logits": input_features})()

    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    labels, soft = torch.tensor([0, 2]), torch.tensor([[0.2, 0.7, 0.1], [0.0, 0.0, 1.0]])
    hard = torch.nn.functional.cross_entropy(logits, labels)
    taught = -(soft * logits.log_softmax(-1)).sum(-1).mean()
    inputs = {"input_features": logits, "labels": labels}
    assert torch.isclose(trainer.compute_loss(Logits(), inputs), hard)
    assert torch.isclose(trainer.compute_loss(Logits(), inputs | {"soft_labels": soft}), 0.75 * hard + 0.25 * taught)


def test_train_with_the_teacher_end_to_end(tmp_path) -> None:
    def train(name: str, *extra: str) -> dict[str, np.ndarray]:
        argv = [
            "train", "--data", str(write_manifest(tmp_path)), "--dataset", "csv", "--from_scratch",
            "--config_overrides", TINY_CNN, "--output_dir", str(tmp_path / name), "--num_train_epochs", "1",
            "--per_device_train_batch_size", "4", "--max_seconds", "2", "--val_fraction", "0",
            "--report_to", "none", "--disable_tqdm", "true", *extra,
        ]  # fmt: skip
        assert emotion(*argv) == 0
        return load_file(tmp_path / name / "model.safetensors")

    plain, taught = train("plain"), train("taught", "--teacher", "speaker-encoder", "--distillation_weight", "0.5")
    # Same seed, same clips, same shapes: only the teacher's term in the loss moved the weights.
    assert plain.keys() == taught.keys()
    assert not all(np.array_equal(plain[key], taught[key]) for key in plain)


@pytest.mark.parametrize("weight", ["-0.1", "1.5"])
def test_a_distillation_weight_outside_0_1_fails_naming_the_flag(weight: str, capsys) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--data", "x", "--teacher", "speaker-encoder", "--distillation_weight", weight])
    assert "--distillation_weight" in capsys.readouterr().err


@pytest.mark.parametrize("key", ["distillation_weight", "augment_probability"])
def test_a_sweep_config_outside_0_1_is_refused_naming_the_key(key: str) -> None:
    # A Ray Tune trial's config goes through parse_dict, not the command-line parser.
    with pytest.raises(ValueError, match=f"--{key} must lie in"):
        parse_dict({"data": "x", "output_dir": "out", key: 1.5})


def test_each_probe_fold_holds_out_whole_speakers_whatever_the_clip_order() -> None:
    # Clips of six speakers in no particular order (as a corpus lists them: by emotion, by take...).
    # Each speaker's clips share a private direction that gives their labels away, so a probe that
    # saw any clip of a speaker labels that speaker's other clips almost perfectly: out of fold by
    # speaker it can only guess, whichever way the clips are ordered.
    rng = np.random.default_rng(1)
    speakers = [f"s{i % 6}" for i in range(120)]
    rng.shuffle(speakers)
    labels = rng.integers(0, 3, 120)
    embeddings = rng.normal(size=(120, 64)) * 0.1
    for i, speaker in enumerate(speakers):
        embeddings[i, int(speaker[1:]) * 10 + labels[i]] += 3.0
    probabilities = soft_labels(embeddings, labels.tolist(), speakers, classes=3)
    accuracy = (probabilities.argmax(1) == labels).mean()
    assert accuracy < 0.6, f"out-of-fold accuracy {accuracy:.0%}: a probe labelled clips of speakers it was fitted on"
    # The same clips listed speaker by speaker: the same folds, so the same soft labels.
    order = np.argsort(speakers, kind="stable")
    grouped = soft_labels(embeddings[order], labels[order].tolist(), [speakers[i] for i in order], classes=3)
    np.testing.assert_allclose(grouped, probabilities[order], atol=1e-5)
