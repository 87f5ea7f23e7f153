"""The emotion-client command, run in-process through main(argv) against the real server."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf
import structlog

from emotion_client.cli import main
from emotion_client.messages import MAX_SPEAKERS
from emotion_client.v1 import emotion_pb2 as pb
from emotion_client.v1 import emotion_pb2_grpc
from emotion_service.diarization import MAX_SPEAKERS as SERVER_MAX_SPEAKERS
from emotion_service.server.app import EmotionServer
from tests.client_support import Interview, make_interview
from tests.conftest import LABELS, recordings
from tests.server_process import free_port

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def target(server: EmotionServer) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.fixture(autouse=True)
def quiet_server_logs() -> Iterator[None]:
    """The in-process server logs to stdout; silence it so that stdout is the CLI's alone."""
    saved = structlog.get_config()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    yield
    structlog.configure(**saved)


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Runs the CLI in a worker thread (the server needs the event loop); returns (code, stdout, stderr)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_classify_json_and_table(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(p) for p in recordings()[:2]]
    code, out, _ = await run(capsys, "classify", *files, "--target", target, "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["file"] for r in rows] == files
    for row in rows:
        assert row["label"] in LABELS and set(row["scores"]) == set(LABELS) and row["duration_s"] > 3
    code, out, _ = await run(capsys, "--target", target, "classify", *files)  # options before the command too
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["FILE", "LABEL", "CONFIDENCE", "DURATION", "SCORES"]
    assert [line.split()[:2] for line in lines[1:]] == [[r["file"], r["label"]] for r in rows]


async def test_classify_says_no_speech_in_json_csv_and_table(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    noise = tmp_path / "hiss.wav"
    sf.write(noise, np.random.default_rng(0).normal(0, 0.05, 3 * 16000).astype(np.float32), 16000)
    files = [str(noise), str(recordings()[0])]
    code, out, _ = await run(capsys, "classify", *files, "--target", target, "--json")
    hiss, speech = json.loads(out)
    assert code == 0
    assert hiss["no_speech"] is True and hiss["label"] == "" and hiss["scores"] == {} and hiss["voiced_fraction"] == 0
    assert speech["no_speech"] is False and speech["label"] in LABELS and 0 < speech["voiced_fraction"] < 1
    code, out, _ = await run(capsys, "classify", *files, "--target", target, "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["no_speech"] for r in rows] == ["true", "false"]
    assert rows[0]["label"] == "" and rows[0]["SAD"] == "" and float(rows[1]["voiced_fraction"]) > 0
    assert rows[1]["label"] in LABELS and set(LABELS) <= set(rows[1])
    code, out, _ = await run(capsys, "classify", *files, "--target", target)
    assert code == 0 and out.splitlines()[1].split()[:3] == [files[0], "no", "speech"]
    # A job's utterances carry the same two fields, in its JSON and CSV.
    code, out, _ = await run(capsys, "analyze", files[1], "--target", target, "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows and all(r["no_speech"] == "false" and float(r["voiced_fraction"]) > 0 for r in rows)


async def test_classify_reports_a_bad_file_and_fails(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio")
    code, out, _ = await run(capsys, "classify", str(recordings()[0]), str(bad), "--target", target, "--json")
    rows = json.loads(out)
    assert code == 1 and "label" in rows[0] and rows[1]["error"]["code"] == "INVALID_ARGUMENT"


async def test_stream_json_lines(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    recording = str(recordings()[0])
    code, out, _ = await run(
        capsys, "stream", recording, "--target", target, "--window-s", "1", "--hop-s", "0.5", "--json"
    )
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and events[-1]["type"] == "summary"
    windows = [e for e in events if e["type"] == "window"]
    assert [w["index"] for w in windows] == list(range(len(windows)))
    assert events[-1]["window_count"] == sum(not w["silent"] for w in windows)  # silence claims no emotion
    assert all(w["silent"] == w["no_speech"] and "voiced_fraction" in w for w in windows)
    code, out, _ = await run(capsys, "stream", recording, "--target", target, "--window-s", "1", "--hop-s", "0.5")
    assert code == 0 and out.count("\n") == len(windows) + 1 and out.splitlines()[-1].startswith("summary:")


async def test_info_and_health(
    target: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMOTION_TARGET", target)  # no --target: the environment's
    code, out, _ = await run(capsys, "info", "--json")
    assert code == 0 and json.loads(out)["labels"] == list(LABELS)
    code, out, _ = await run(capsys, "info")
    assert code == 0 and "HubertForSequenceClassification" in out
    code, out, _ = await run(capsys, "health", "--json")
    assert code == 0 and json.loads(out) == {"target": target, "service": "", "status": "SERVING"}
    code, out, _ = await run(capsys, "health", "--service", "no.such.Service")
    assert code == 1 and out.strip() == "SERVICE_UNKNOWN"


async def test_unreachable_target_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = await run(capsys, "health", "--target", f"127.0.0.1:{free_port()}", "--retries", "0")
    assert code == 1 and out == "" and err.startswith("emotion-client: error: UNAVAILABLE:")


async def test_interview_writes_json_and_html(target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    interview: Interview = make_interview(tmp_path, ["HAP", "SAD", "ANG"])
    questions = tmp_path / "questions.csv"
    questions.write_text("id,start,end\n" + "".join(f"{q},{a},{b}\n" for q, a, b, _ in interview.questions))
    out_json, out_html = tmp_path / "report.json", tmp_path / "report.html"
    code, out, _ = await run(
        capsys,
        "interview",
        str(interview.path),
        "--questions",
        str(questions),
        "--target",
        target,
        "--window-s",
        "1",
        "--hop-s",
        "0.5",
        "--json",
        str(out_json),
        "--html",
        str(out_html),
    )
    assert code == 0 and out.splitlines()[1].split()[:3] == ["QUESTION", "SPAN", "WINDOWS"]  # a stream's windows
    report = json.loads(out_json.read_text())
    assert [(q["id"], q["start_s"], q["end_s"]) for q in report["questions"]] == [q[:3] for q in interview.questions]
    assert all(q["dominant_label"] in LABELS and q["window_count"] > 0 for q in report["questions"])
    assert "<svg" in out_html.read_text()
    code, out, _ = await run(
        capsys, "interview", str(interview.path), "--target", target, "--json", "-", "--min-pause-s", "1"
    )
    assert code == 0 and json.loads(out)["segmentation"] == "pauses"


def two_party_channels(path: Path) -> None:
    """A two-channel recording: actor 21 on channel 0, then actor 20 on channel 1, each silent while
    the other speaks (one party per channel)."""
    man, woman = (sf.read(sorted(DATA.glob(f"*-{actor}.flac"))[0], dtype="float32") for actor in ("21", "20"))
    rate = man[1]
    man_wave, woman_wave = man[0] if man[0].ndim == 1 else man[0].mean(axis=1), woman[0]
    woman_wave = woman_wave if woman_wave.ndim == 1 else woman_wave.mean(axis=1)
    gap = np.zeros(rate // 2, np.float32)
    left = np.concatenate([man_wave, gap, np.zeros_like(woman_wave)])
    right = np.concatenate([np.zeros_like(man_wave), gap, woman_wave])
    sf.write(path, np.stack([left, right], axis=1), rate, subtype="PCM_16")


async def test_analyze_prints_each_partys_summary_after_the_utterances(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job of two parties (here one per channel) prints the per-speaker table `interview` prints,
    after its utterances: the same numbers as `--json`'s `parties`; a job of one party prints none."""
    recording = tmp_path / "two-channels.wav"
    two_party_channels(recording)
    code, out, _ = await run(capsys, "analyze", str(recording), "--channels", "separate", "--wait", "--json",
                             "--target", target)  # fmt: skip
    parties = json.loads(out)["parties"]
    assert code == 0 and [p["party"] for p in parties] == ["S1", "S2"]
    code, out, _ = await run(capsys, "analyze", str(recording), "--channels", "separate", "--wait", "--target", target)
    lines = out.splitlines()
    assert code == 0
    utterances = next(i for i, line in enumerate(lines) if line.split()[:2] == ["REC", "CH"])
    table = next((i for i, line in enumerate(lines) if line.split()[:1] == ["SPEAKER"]), -1)
    assert table > utterances, f"the per-party table follows the utterances: {out}"
    assert lines[table].split() == ["SPEAKER", "SPOKE", "SHARE", "UTTERANCES", "DOMINANT", "SHARES", "ALERTS"]
    rows = [line.split() for line in lines[table + 1 :]]
    assert [(r[0], r[4], r[5], r[-1]) for r in rows] == [
        (p["party"], str(p["count"]), p["dominant_label"], str(p["alert_count"])) for p in parties
    ]
    assert [r[3] for r in rows] == [f"{p['time_share']:.0%}" for p in parties]
    code, out, _ = await run(capsys, "analyze", str(recordings()[0]), "--wait", "--target", target)
    assert code == 0 and not any(line.startswith("SPEAKER") for line in out.splitlines()), "one party: no table"


def test_num_speakers_out_of_range_or_with_separate_channels_is_refused_before_sending(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A count the server cannot take is the client's own sentence, naming the flags, and nothing is
    sent (the target listens nowhere: a call would have failed UNAVAILABLE)."""
    nowhere = ["--target", f"127.0.0.1:{free_port()}", "--retries", "0"]
    clip = str(recordings()[0])
    for count in ("99999999999", "7", "-1", "two"):
        with pytest.raises(SystemExit) as exited:
            main(["analyze", clip, "--diarize", "--num-speakers", count, *nowhere])
        err = capsys.readouterr().err
        assert exited.value.code == 2 and "--num-speakers" in err and f"1 to {MAX_SPEAKERS}" in err, err
        assert "out of range" not in err.lower()
    assert MAX_SPEAKERS == SERVER_MAX_SPEAKERS, "the client states the server's limit"
    for flags in (["--diarize", "--num-speakers", "3"], ["--num-speakers", "1"], ["--diarize"]):
        # Whichever flags come with separate channels, the sentence is about separate channels (not
        # "needs --diarize", which would send the reader round in a circle).
        code = main(["analyze", clip, "--channels", "separate", *flags, *nowhere])
        err = capsys.readouterr().err
        assert code == 1 and "UNAVAILABLE" not in err, err
        assert "--channels separate" in err and "--channels mix --diarize" in err, err


async def test_the_server_refuses_a_speaker_count_with_separate_channels(target: str) -> None:
    """SubmitJob with diarization settings it cannot use (a count or diarize with SEPARATE channels, a
    count without diarize) is refused, not run with them silently ignored."""
    recording = pb.Recording(name="clip.flac", content=recordings()[0].read_bytes())
    cases = [
        (pb.CHANNEL_MODE_SEPARATE, True, 3, ("num_speakers=3", "CHANNEL_MODE_SEPARATE")),
        (pb.CHANNEL_MODE_SEPARATE, True, 0, ("diarize", "CHANNEL_MODE_SEPARATE")),
        (pb.CHANNEL_MODE_MIX, False, 3, ("num_speakers=3", "set diarize")),
    ]
    async with grpc.aio.insecure_channel(target) as channel:
        for channels, diarize, count, words in cases:
            request = pb.SubmitJobRequest(recordings=[recording], channels=channels, diarize=diarize, num_speakers=count)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await emotion_pb2_grpc.EmotionServiceStub(channel).SubmitJob(request, timeout=30)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert all(word in str(refused.value.details()) for word in words), refused.value.details()
