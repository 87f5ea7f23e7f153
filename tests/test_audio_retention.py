"""Stored data: results only by default; retained audio only when an operator asks, and then encrypted at rest."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import inspect, select

from emotion_client.v1 import emotion_pb2 as pb
from emotion_service.plugins import Result
from emotion_service.plugins.builtin.store import ResultsStore, StoreConfig
from emotion_service.plugins.manager import PluginLoadError, build_host, load_plugins
from emotion_service.plugins.store import ResultStore, StoreError
from emotion_service.plugins.store.repository import pcm16
from emotion_service.plugins.store.schema import AudioClipRow
from emotion_service.settings import ConfigError, load_plugin_config
from tests.plugin_helpers import ravdess_interview, run_stream, serving, settle, stream_requests

RATE = 16000
KEY_HINT = r"Fernet\.generate_key\(\)"


def clip(seed: int = 7, seconds: float = 1.0) -> np.ndarray:
    """Distinctive audio: seeded noise, so its PCM bytes cannot turn up in a database by chance."""
    return np.random.default_rng(seed).uniform(-0.9, 0.9, int(RATE * seconds)).astype(np.float32)


def result(session: str, audio: np.ndarray | None, index: int = 0) -> Result:
    return Result(
        session, session, "window", "ANG", {"ANG": 0.8, "NEU": 0.2}, index * 1.0, index * 1.0 + 1.0, index, "tiny",
        audio=audio, sample_rate=RATE if audio is not None else 0,
    )


def database_bytes(db: Path) -> bytes:
    """Everything SQLite wrote for ``db``: the file, and its WAL / journal when they are still there."""
    return b"".join(p.read_bytes() for p in sorted(db.parent.glob(db.name + "*")))


def pcm_pieces(audio: np.ndarray) -> list[bytes]:
    """Three distinctive 256-byte stretches of the clip's PCM (early, middle, late; silence skipped).

    Any of them in a file means the audio lies there in plaintext.
    """
    pcm = pcm16(audio)
    chunks = [pcm[i : i + 256] for i in range(0, len(pcm) - 255, 256)]
    lively = [c for c in chunks if len(np.unique(np.frombuffer(c, "<i2"))) >= 100]
    assert len(lively) >= 3, "the clip is too quiet to recognise"
    return [lively[0], lively[len(lively) // 2], lively[-1]]


def assert_no_plaintext(db: Path, audio: np.ndarray) -> None:
    stored = database_bytes(db)
    assert stored, f"nothing written at {db}"
    for piece in pcm_pieces(audio):
        assert piece not in stored


def keeping(tmp_path: Path, key: str) -> ResultsStore:
    """The store keeping audio under ``key``, its database results.db and its spool in ``tmp_path``."""
    return ResultsStore(
        StoreConfig(
            database_url=f"sqlite:///{tmp_path / 'results.db'}",
            retain_audio=True,
            audio_encryption_key=key,
            spool_dir=str(tmp_path / "spool"),
        )
    )


def test_the_plaintext_check_would_see_raw_audio(tmp_path: Path) -> None:
    audio = clip()
    raw = tmp_path / "raw.db"
    raw.write_bytes(b"header" + pcm16(audio) + b"trailer")
    with pytest.raises(AssertionError):
        assert_no_plaintext(raw, audio)


def test_by_default_no_audio_is_stored(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    audio = clip()
    plugin = ResultsStore(StoreConfig(database_url=f"sqlite:///{db}", spool_dir=str(tmp_path / "spool")))
    assert plugin.config.retain_audio is False
    plugin.on_result(result("s-default", audio))
    assert plugin.flush()
    store = plugin.store
    assert not store.retains_audio
    assert not inspect(store.engine).has_table(AudioClipRow.__tablename__)
    assert store.session("s-default") is not None
    with pytest.raises(StoreError, match="needs its encryption key"):
        store.audio_clip("s-default")
    assert store.audio_clip("s-default", key=Fernet.generate_key()) is None
    store.close()
    assert_no_plaintext(db, audio)


def test_retained_audio_is_ciphertext_that_only_the_key_opens(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    key = Fernet.generate_key().decode()
    audio = clip(seed=11)
    plugin = keeping(tmp_path, key)
    plugin.on_result(result("s-kept", audio, index=0))
    plugin.on_result(result("s-kept", audio[::-1].copy(), index=1))
    plugin.on_result(result("s-kept", None, index=2))  # nothing to keep: the result alone is stored
    assert plugin.flush()
    store = plugin.store
    assert store.retains_audio
    with store.engine.connect() as conn:
        rows = conn.execute(select(AudioClipRow).order_by(AudioClipRow.position)).all()
    assert [(r.session_id, r.position, r.sample_rate, r.sample_count) for r in rows] == [
        ("s-kept", 0, RATE, len(audio)),
        ("s-kept", 1, RATE, len(audio)),
    ]
    blob = rows[0].ciphertext
    assert pcm16(audio) not in blob
    assert Fernet(key).decrypt(blob) == pcm16(audio)
    with pytest.raises(InvalidToken):
        Fernet(Fernet.generate_key()).decrypt(blob)

    kept = store.audio_clip("s-kept", 0)
    assert kept is not None and kept.sample_rate == RATE and kept.pcm == pcm16(audio)
    np.testing.assert_allclose(kept.waveform, audio, atol=1 / 32767)
    np.testing.assert_allclose(store.audio_clip("s-kept", 1).waveform, audio[::-1], atol=1 / 32767)  # type: ignore[union-attr]
    assert store.audio_clip("s-kept", 2) is None and store.audio_clip("other") is None
    with pytest.raises(StoreError, match="wrong audio encryption key"):
        store.audio_clip("s-kept", 0, key=Fernet.generate_key())
    record = store.session("s-kept")
    assert record is not None and [r.index for r in record.summary.results] == [0, 1, 2]
    assert all(r.audio is None for r in record.summary.results)
    store.close()
    assert_no_plaintext(db, audio)

    # An operator reading the clips later with the key; and key rotation: new key first, old one still decrypts.
    reader = ResultStore(f"sqlite:///{db}", must_exist=True)
    assert reader.audio_clip("s-kept", 0, key=key).pcm == pcm16(audio)  # type: ignore[union-attr]
    reader.close()
    rotated = ResultStore(f"sqlite:///{db}", audio_key=f"{Fernet.generate_key().decode()},{key}")
    assert rotated.audio_clip("s-kept", 0).pcm == pcm16(audio)  # type: ignore[union-attr]
    rotated.close()


@pytest.mark.parametrize(
    ("key", "problem"),
    [("", "is empty"), ("not-a-key", "is not a Fernet key"), ("c2hvcnQ=", "is not a Fernet key")],
)
def test_retention_without_a_valid_key_is_refused(tmp_path: Path, key: str, problem: str) -> None:
    config = StoreConfig(database_url=f"sqlite:///{tmp_path / 'r.db'}", retain_audio=True, audio_encryption_key=key)
    expected = f"retain_audio is on but audio_encryption_key {problem}.*EMOTION_AUDIO_ENCRYPTION_KEY.*{KEY_HINT}"
    with pytest.raises(ConfigError, match=expected) as caught:
        ResultsStore(config)
    assert key == "" or key not in str(caught.value)  # the (bad) key is never echoed
    with pytest.raises(StoreError, match=f"audio encryption key {problem}"):
        ResultStore(f"sqlite:///{tmp_path / 'r.db'}", audio_key=key)


def test_settings_come_from_the_environment_and_the_key_stays_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Fernet.generate_key().decode()
    env = {"EMOTION_RETAIN_AUDIO": "true", "EMOTION_AUDIO_ENCRYPTION_KEY": key}
    config = load_plugin_config("store", StoreConfig, environ=env)
    assert config.retain_audio and config.audio_encryption_key == key
    assert key not in repr(config) and key not in repr(
        ResultsStore(replace(config, spool_dir=str(tmp_path / "spool"))).config
    )

    monkeypatch.setenv("EMOTION_DATABASE_URL", f"sqlite:///{tmp_path / 'r.db'}")
    monkeypatch.setenv("EMOTION_RETAIN_AUDIO", "yes")
    monkeypatch.delenv("EMOTION_AUDIO_ENCRYPTION_KEY", raising=False)
    with pytest.raises(PluginLoadError, match=f"'store' is misconfigured: .*audio_encryption_key is empty.*{KEY_HINT}"):
        load_plugins("store")


async def test_a_served_stream_and_classify_keep_only_encrypted_audio(tiny_model: Path, tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    key = Fernet.generate_key().decode()
    plugin = keeping(tmp_path, key)
    wave = ravdess_interview()[: RATE * 4]
    pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2")
    sent = pcm.astype(np.float32) / 32768  # what the server decodes from the s16le it is sent
    async with serving(tiny_model, build_host({"store": plugin})) as (server, stub):
        responses = await run_stream(stub, stream_requests(wave, "kept-stream"))
        reply = await stub.Classify(
            pb.ClassifyRequest(
                request_id="kept-classify",
                audio=pb.Audio(
                    raw=pb.RawAudio(
                        data=pcm.tobytes(),
                        format=pb.PcmFormat(encoding=pb.PCM_ENCODING_S16LE, sample_rate=RATE, channels=1),
                    )
                ),
            ),
            timeout=60,
        )
        await settle(server)
    store = plugin.store
    windows = [r.window for r in responses if r.HasField("window")]
    assert len(windows) >= 2 and reply.label
    for w in windows:
        kept = store.audio_clip("kept-stream", w.index)
        assert kept is not None and kept.sample_rate == RATE
        start, end = round(w.start_s * RATE), round(w.end_s * RATE)
        np.testing.assert_allclose(kept.waveform, sent[start:end], atol=2 / 32767)
    whole = store.audio_clip(reply.session_id)
    assert whole is not None and len(whole.waveform) == len(sent)
    np.testing.assert_allclose(whole.waveform, sent, atol=2 / 32767)
    store.close()
    assert_no_plaintext(db, sent)
    for piece in pcm_pieces(pcm.astype(np.float32) / 32767):  # the exact bytes the client sent
        assert piece not in database_bytes(db)
