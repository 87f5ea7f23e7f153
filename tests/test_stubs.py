"""The committed client stubs match protos/."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_stubs_are_fresh() -> None:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "clients/python/generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    assert generate.stale_files(generate.generate()) == [], "stubs are stale: run `make proto`"


def test_service_full_name() -> None:
    from emotion_client.v1 import emotion_pb2

    service = emotion_pb2.DESCRIPTOR.services_by_name["EmotionService"]
    assert service.full_name == "emotion.v1.EmotionService"
    assert [m.name for m in service.methods] == [
        "Classify",
        "StreamClassify",
        "GetModelInfo",
        "DeleteSession",
        "SubmitJob",
        "GetJob",
        "ListJobs",
        "CancelJob",
        "WatchJob",
    ]
    audio = emotion_pb2.Audio.DESCRIPTOR
    assert [f.name for f in audio.oneofs_by_name["source"].fields] == ["content", "raw"]
