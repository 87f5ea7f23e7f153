"""The ``emotion-client`` command: classify, stream, analyze (jobs), info, health and interview from a shell.

Connection options may come before or after the command, and from the
environment: ``EMOTION_TARGET``, ``EMOTION_TLS``, ``EMOTION_CA_CERT``,
``EMOTION_CLIENT_CERT``, ``EMOTION_CLIENT_KEY``, ``EMOTION_TOKEN``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from emotion_client import API_VERSION, __version__
from emotion_client.client import EmotionClient
from emotion_client.connection import DEFAULT_TARGET, RetryPolicy
from emotion_client.errors import EmotionError
from emotion_client.interview import (
    INTERVIEW_PARTIES,
    InterviewReport,
    PartyStats,
    PauseSettings,
    SegmentError,
    assess_interview,
    load_segments,
    render_html,
)
from emotion_client.messages import MAX_SPEAKERS
from emotion_client.results import Alert, Job, PartySummary, StreamSummary, WindowResult

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _add_connection_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Adds the connection flags; on sub-commands their defaults are suppressed so that
    flags given before the command are not reset."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("connection")
    env = os.environ.get
    group.add_argument(
        "--target",
        default=default(env("EMOTION_TARGET", DEFAULT_TARGET)),
        help=f"HOST:PORT of the service [env EMOTION_TARGET; default {DEFAULT_TARGET}]",
    )
    group.add_argument(
        "--tls",
        action="store_true",
        default=default(_env_flag("EMOTION_TLS")),
        help="use TLS with the system's root certificates [env EMOTION_TLS=1]",
    )
    group.add_argument(
        "--ca-cert",
        metavar="PEM",
        default=default(env("EMOTION_CA_CERT")),
        help="CA certificate to verify the server with (implies --tls) [env EMOTION_CA_CERT]",
    )
    group.add_argument(
        "--client-cert",
        metavar="PEM",
        default=default(env("EMOTION_CLIENT_CERT")),
        help="client certificate for mutual TLS, with --client-key [env EMOTION_CLIENT_CERT]",
    )
    group.add_argument(
        "--client-key",
        metavar="PEM",
        default=default(env("EMOTION_CLIENT_KEY")),
        help="private key of --client-cert [env EMOTION_CLIENT_KEY]",
    )
    group.add_argument(
        "--server-name",
        metavar="NAME",
        default=default(None),
        help="name to check the server's certificate against, when it differs from the target host",
    )
    group.add_argument(
        "--token",
        default=default(env("EMOTION_TOKEN")),
        help="bearer token sent as 'authorization: Bearer TOKEN' [env EMOTION_TOKEN]",
    )
    group.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=default(30.0),
        help="deadline of each unary call, retries included (default 30)",
    )
    group.add_argument(
        "--retries",
        type=int,
        metavar="N",
        default=default(4),
        help="retries of a call failing with UNAVAILABLE, with exponential backoff (default 4; 0: none)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``emotion-client``."""
    parser = argparse.ArgumentParser(
        prog="emotion-client",
        description=f"Client of the speech emotion service (API {API_VERSION}).",
        epilog="Run 'emotion-client COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__} (API {API_VERSION})")
    _add_connection_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _add_connection_options(sub, suppress=True)
        return sub

    classify = command("classify", "Classify whole recordings (WAV, FLAC, OGG, MP3), one row per file.")
    classify.add_argument("files", nargs="+", metavar="FILE", type=Path)
    classify.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    classify.add_argument(
        "--csv", action="store_true", help="print CSV (file, label, no_speech, voiced_fraction, every score) instead"
    )

    stream = command("stream", "Stream a recording and print windows and alerts as they come, then the summary.")
    stream.add_argument("file", metavar="FILE", type=Path)
    _add_window_options(stream)
    stream.add_argument("--session-id", default="", help="id of the stream in the server's logs and reports")
    stream.add_argument("--json", action="store_true", help="print one JSON object per event (JSON lines)")

    analyze = command(
        "analyze",
        "Analyse whole recordings as a job: utterances found by voice activity, each scored "
        "(per speaker channel with --channels separate). Prints the job; with --wait, its utterances.",
    )
    analyze.add_argument("files", nargs="*", metavar="FILE", type=Path, help="recordings sent as their bytes")
    analyze.add_argument(
        "--uri",
        action="append",
        default=[],
        metavar="PATH",
        help="a recording the server reads itself, under its job_input_dir (repeatable; for large files)",
    )
    analyze.add_argument(
        "--channels",
        choices=("mix", "separate"),
        default="mix",
        help="mix: the channels are one track (default); separate: each channel is one party, analysed on its own",
    )
    analyze.add_argument(
        "--diarize",
        action="store_true",
        help="find who speaks in one-channel recordings: each utterance gets a speaker (S1, S2, ...)",
    )
    analyze.add_argument(
        "--num-speakers",
        type=_speaker_count,
        default=0,
        metavar="N",
        help=f"with --diarize: how many speakers there are, 1 to {MAX_SPEAKERS} (default 0: the server finds out)",
    )
    analyze.add_argument("--wait", action="store_true", help="wait for the job to end and print its utterances")
    analyze.add_argument("--json", action="store_true", help="print JSON (session_id, state, utterances, ...)")
    analyze.add_argument("--csv", action="store_true", help="print the utterances as CSV (implies --wait)")
    analyze.add_argument("--session-id", default="", help="the session to store the results under")
    analyze.add_argument(
        "--metadata", action="append", default=[], metavar="KEY=VALUE", help="stored with the session (repeatable)"
    )

    job = command("job", "Show a job (its utterances once it succeeded); --wait for its end, --cancel to cancel it.")
    job.add_argument("job_id", metavar="JOB_ID")
    job.add_argument("--wait", action="store_true", help="wait for the job to end")
    job.add_argument("--cancel", action="store_true", help="cancel it (a job that ended is left as it is)")
    job.add_argument("--json", action="store_true", help="print JSON")

    jobs = command("jobs", "List jobs, newest first.")
    jobs.add_argument(
        "--state", choices=("queued", "running", "succeeded", "failed", "cancelled"), help="only jobs in this state"
    )
    jobs.add_argument("--json", action="store_true", help="print JSON")

    info = command("info", "Describe the served model, its labels and the batching settings.")
    info.add_argument("--json", action="store_true", help="print JSON")

    health = command("health", "Print the gRPC health status; exit 0 when SERVING, 1 otherwise.")
    health.add_argument("--service", default="", help="service to ask about (default: the whole server)")
    health.add_argument("--json", action="store_true", help="print JSON")

    interview = command("interview", "Report emotions per question of an interview recording (JSON and HTML).")
    interview.add_argument("recording", metavar="RECORDING", type=Path)
    interview.add_argument(
        "--questions",
        type=Path,
        metavar="FILE",
        help="JSON or CSV of question id,start,end[,text]; without it questions are found from pauses",
    )
    interview.add_argument(
        "--json",
        dest="json_out",
        metavar="OUT",
        help="write the report as JSON to OUT ('-': standard output, no table)",
    )
    interview.add_argument("--html", dest="html_out", type=Path, metavar="OUT", help="write the report as an HTML page")
    _add_window_options(interview)
    interview.add_argument(
        "--min-pause-s",
        type=float,
        default=PauseSettings.min_pause_s,
        help=f"without --questions: shortest pause between questions (default {PauseSettings.min_pause_s})",
    )
    interview.add_argument("--session-id", default="", help="id of the stream in the server's logs and reports")
    interview.add_argument(
        "--diarize",
        action="store_true",
        help="both parties in one channel: analyse as a diarized job and report per speaker (window options do not apply)",
    )
    interview.add_argument(
        "--num-speakers",
        type=_speaker_count,
        default=None,
        metavar="N",
        help=f"with --diarize: how many speak, 1 to {MAX_SPEAKERS} (default 2, interviewer and candidate; "
        "0: the server finds out, and may miss a party who speaks little or split a voice by register)",
    )
    return parser


def _speaker_count(text: str) -> int:
    """``--num-speakers``: 0 (the server finds out) to the most speakers the server tells apart,
    checked here so that a bad count is a usage error before anything is sent."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number: give 1 to {MAX_SPEAKERS}, or 0 to let the server find out"
        ) from None
    if not 0 <= count <= MAX_SPEAKERS:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_SPEAKERS} speakers are told apart (got {count}): give 1 to {MAX_SPEAKERS}, "
            "or 0 to let the server find out"
        )
    return count


def _add_window_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--window-s", type=float, default=0.0, help="window length in seconds (default: the server's)")
    parser.add_argument(
        "--hop-s", type=float, default=0.0, help="step between windows in seconds (default: the server's)"
    )
    parser.add_argument("--realtime", action="store_true", help="send the audio no faster than it plays")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        client = EmotionClient(
            args.target,
            tls=args.tls,
            ca_cert=args.ca_cert,
            client_cert=args.client_cert,
            client_key=args.client_key,
            server_name=args.server_name,
            token=args.token,
            timeout=args.timeout,
            retry=RetryPolicy(max_attempts=1 + max(0, args.retries)),
        )
        with client:
            return _COMMANDS[args.command](client, args)
    except (EmotionError, SegmentError, ValueError, OSError) as exc:
        print(f"emotion-client: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _classify(client: EmotionClient, args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    for path in args.files:
        try:
            rows.append({"file": str(path), **client.classify(path).to_dict()})
        except EmotionError as exc:
            rows.append({"file": str(path), "error": {"code": exc.code.name, "message": exc.message}})
    if args.json:
        _print_json(rows)
    elif args.csv:
        _print_classify_csv(rows)
    else:
        _print_table(
            ["FILE", "LABEL", "CONFIDENCE", "DURATION", "SCORES"],
            [_classify_row(row) for row in rows],
        )
    return EXIT_FAILED if any("error" in row for row in rows) else EXIT_OK


def _print_classify_csv(rows: list[dict[str, Any]]) -> None:
    """One row per file: its label (empty without speech), no_speech, voiced_fraction and every score
    (empty without speech: no emotion is claimed); a file that failed has its error instead."""
    labels = sorted({label for row in rows for label in row.get("scores", {})})
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["file", "label", "no_speech", "voiced_fraction", "duration_s", *labels, "error"])
    for row in rows:
        if "error" in row:
            writer.writerow([row["file"], "", "", "", "", *([""] * len(labels)), row["error"]["message"]])
            continue
        scores = row["scores"]
        writer.writerow(
            [row["file"], row["label"], str(row["no_speech"]).lower(), f"{row['voiced_fraction']:.4f}",
             f"{row['duration_s']:.3f}", *(f"{scores[label]:.4f}" if label in scores else "" for label in labels), ""]
        )  # fmt: skip


def _classify_row(row: Mapping[str, Any]) -> list[str]:
    if "error" in row:
        return [row["file"], "-", "-", "-", f"error {row['error']['code']}: {row['error']['message']}"]
    if row.get("no_speech"):
        voiced = f"voiced {row['voiced_fraction']:.0%}: no emotion claimed"
        return [row["file"], "no speech", "-", f"{row['duration_s']:.2f} s", voiced]
    scores = row["scores"]
    return [
        row["file"],
        row["label"],
        f"{scores.get(row['label'], 0.0):.1%}",
        f"{row['duration_s']:.2f} s",
        "  ".join(f"{label} {score:.2f}" for label, score in list(scores.items())[:3]),
    ]


def _stream(client: EmotionClient, args: argparse.Namespace) -> int:
    events = client.stream(
        args.file, window_s=args.window_s, hop_s=args.hop_s, realtime=args.realtime, session_id=args.session_id
    )
    for event in events:
        if args.json:
            kind = {WindowResult: "window", Alert: "alert", StreamSummary: "summary"}[type(event)]
            print(json.dumps({"type": kind, **event.to_dict()}), flush=True)
        else:
            print(_describe(event), flush=True)
    return EXIT_OK


def _describe(event: WindowResult | Alert | StreamSummary) -> str:
    if isinstance(event, WindowResult):
        runners = ", ".join(f"{label} {score:.0%}" for label, score in list(event.scores.items())[1:3])
        span = f"[{event.start_s:7.2f}s - {event.end_s:7.2f}s]"
        if event.no_speech or event.silent:
            return f"{span} #{event.index:<4} no speech (voiced {event.voiced_fraction:.0%})"
        if event.skipped:
            return f"{span} #{event.index:<4} not scored: the server was busy"
        return f"{span} #{event.index:<4} {event.label} {event.confidence:.0%}  ({runners})"
    if isinstance(event, Alert):
        label = f" {event.label}" if event.label else ""
        return f"! {event.time_s:7.2f}s {event.severity} {event.kind}{label}: {event.message}"
    shares = ", ".join(f"{label} {share:.0%}" for label, share in _by_value(event.shares) if share > 0)
    return (
        f"summary: {event.window_count} windows over {event.duration_s:.2f} s, dominant {event.dominant_label or '-'}"
        f" ({shares}); {event.alert_count} alerts; session {event.session_id}"
    )


def _analyze(client: EmotionClient, args: argparse.Namespace) -> int:
    metadata = {}
    for item in args.metadata:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--metadata {item!r}: write KEY=VALUE")
        metadata[key] = value
    if (args.num_speakers or args.diarize) and args.channels == "separate":
        # The server would refuse it too; said here in the flags' own words, before the files are sent.
        flags = "--num-speakers" if args.num_speakers else "--diarize"
        raise ValueError(
            f"{flags} finds speakers in one channel: with --channels separate each channel is one speaker; "
            f"drop {flags} or use --channels mix --diarize"
        )
    if args.num_speakers and not args.diarize:
        raise ValueError("--num-speakers needs --diarize")
    job = client.submit_job(
        args.files,
        channels=args.channels,
        uris=args.uri,
        metadata=metadata,
        session_id=args.session_id,
        diarize=args.diarize,
        num_speakers=args.num_speakers,
    )
    if not args.json and not args.csv:
        print(f"job {job.job_id} queued: session {job.session_id}", file=sys.stderr, flush=True)
    return _show_job(client, job, args)


def _job(client: EmotionClient, args: argparse.Namespace) -> int:
    job = client.cancel_job(args.job_id) if args.cancel else client.get_job(args.job_id)
    return _show_job(client, job, args)


def _show_job(client: EmotionClient, job: Job, args: argparse.Namespace) -> int:
    as_csv = getattr(args, "csv", False)
    if (args.wait or as_csv) and not job.ended:
        job = client.wait_job(job.job_id, on_update=None if args.json or as_csv else _print_progress)
    if as_csv:
        _print_csv(job)
    elif args.json:
        _print_json(job.to_dict())
    else:
        _print_job(job)
    return EXIT_FAILED if job.state in ("failed", "cancelled") else EXIT_OK


def _print_csv(job: Job) -> None:
    """The utterances, one row each: where, who, the label, whether it held speech and every label's
    score (label and scores empty for an utterance without speech: no emotion is claimed)."""
    labels = sorted({label for u in job.utterances for label in u.scores})
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(
        ["recording", "channel", "speaker", "start_s", "end_s", "label", "no_speech", "voiced_fraction", *labels]
    )
    for u in job.utterances:
        scores = [""] * len(labels) if u.no_speech else [f"{u.scores.get(label, 0.0):.4f}" for label in labels]
        writer.writerow(
            [u.recording, u.channel, u.speaker, f"{u.start_s:.3f}", f"{u.end_s:.3f}", u.label,
             str(u.no_speech).lower(), f"{u.voiced_fraction:.4f}", *scores]  # fmt: skip
        )
    if job.error:
        print(f"error: {job.error}", file=sys.stderr)


def _print_progress(job: Job) -> None:
    eta = f", about {job.eta_s:.0f} s left" if job.eta_s > 0 else ""
    print(f"  {job.state} {job.progress:.0%}{eta}", file=sys.stderr, flush=True)


def _print_job(job: Job) -> None:
    print(
        f"job {job.job_id}: {job.state}, {job.progress:.0%} of {job.audio_s:.1f} s "
        f"({', '.join(job.recordings)}; channels {job.channels}); session {job.session_id}"
    )
    if job.error:
        print(f"error: {job.error}")
    if job.utterances:
        _print_table(
            ["REC", "CH", "SPEAKER", "START", "END", "LABEL", "CONFIDENCE", "NEXT"],
            [
                [
                    str(u.recording),
                    str(u.channel),
                    u.speaker or "-",
                    f"{u.start_s:.2f}",
                    f"{u.end_s:.2f}",
                    u.label or ("no speech" if u.no_speech else "-"),
                    "-" if u.no_speech else f"{u.scores.get(u.label, 0.0):.0%}",
                    "  ".join(f"{label} {score:.0%}" for label, score in _by_value(u.scores)[1:3]),
                ]
                for u in job.utterances
            ],
        )
    if len(job.parties) >= 2:  # the server sums up parties only when there are two or more
        print()
        _print_parties(job.parties)


def _jobs(client: EmotionClient, args: argparse.Namespace) -> int:
    found = client.list_jobs(state=args.state or "")
    if args.json:
        _print_json([job.to_dict() for job in found])
        return EXIT_OK
    if not found:
        print("no jobs: submit one with 'emotion-client analyze FILE'")
        return EXIT_OK
    _print_table(
        ["JOB", "STATE", "PROGRESS", "AUDIO", "CREATED", "SESSION"],
        [
            [j.job_id, j.state, f"{j.progress:.0%}", f"{j.audio_s:.1f} s", j.created_at, j.session_id]
            for j in found
        ],
    )
    return EXIT_OK


def _info(client: EmotionClient, args: argparse.Namespace) -> int:
    info = client.model_info()
    if args.json:
        _print_json(info.to_dict())
        return EXIT_OK
    b = info.batching
    _print_table(
        ["FIELD", "VALUE"],
        [
            ["model", f"{info.name} {info.version}"],
            ["architecture", info.architecture],
            ["labels", ", ".join(info.labels)],
            ["sample rate", f"{info.sample_rate} Hz"],
            ["device", f"{info.device} ({info.dtype})"],
            [
                "batching",
                f"up to {b.max_batch_size} per pass, wait {b.max_queue_delay_ms:g} ms, queue {b.max_queue_size}",
            ],
            ["max audio", f"{info.max_audio_s:g} s per Classify"],
            ["stream windows", f"{info.default_window_s:g} s every {info.default_hop_s:g} s"],
            ["api", API_VERSION],
        ],
        header=False,
    )
    return EXIT_OK


def _health(client: EmotionClient, args: argparse.Namespace) -> int:
    status = client.health(args.service)
    if args.json:
        _print_json({"target": args.target, "service": args.service, "status": status.name})
    else:
        print(status.name)
    return EXIT_OK if status.serving else EXIT_FAILED


def _interview(client: EmotionClient, args: argparse.Namespace) -> int:
    if args.num_speakers is not None and not args.diarize:
        raise ValueError("--num-speakers needs --diarize")
    segments = load_segments(args.questions) if args.questions else None
    report = assess_interview(
        client,
        args.recording,
        segments,
        window_s=args.window_s,
        hop_s=args.hop_s,
        realtime=args.realtime,
        pauses=PauseSettings(min_pause_s=args.min_pause_s),
        session_id=args.session_id,
        diarize=args.diarize,
        num_speakers=INTERVIEW_PARTIES if args.num_speakers is None else args.num_speakers,
    )
    if args.json_out == "-":
        print(report.to_json())
    else:
        _print_interview(report)
        if args.json_out:
            Path(args.json_out).write_text(report.to_json() + "\n", encoding="utf-8")
    if args.html_out:
        args.html_out.write_text(render_html(report), encoding="utf-8")
    return EXIT_OK


def _print_interview(report: InterviewReport) -> None:
    o = report.overall
    print(
        f"{report.recording}: {len(report.questions)} questions ({report.segmentation}), {report.duration_s:.1f} s, "
        f"{o.window_count} {'utterances' if report.diarized else 'windows'}; dominant {o.dominant_label or '-'} "
        f"({o.confidence:.0%}), {'?' if report.alert_count is None else report.alert_count} alerts"
    )
    rows = []
    for q in report.questions:
        shares = ", ".join(f"{label} {share:.0%}" for label, share in _by_value(q.stats.shares)[:3] if share > 0)
        rows.append(
            [
                q.id,
                f"{q.start_s:.1f}-{q.end_s:.1f} s",
                str(q.stats.window_count),
                q.stats.dominant_label or "-",
                f"{q.stats.confidence:.0%}",
                shares,
                str(len(q.alerts)),
            ]
        )
    counted = "UTTERANCES" if report.diarized else "WINDOWS"
    _print_table(["QUESTION", "SPAN", counted, "DOMINANT", "CONFIDENCE", "SHARES", "ALERTS"], rows)
    if report.parties:
        print()
        _print_parties(report.parties)


def _print_parties(parties: Sequence[PartySummary | PartyStats]) -> None:
    """The per-speaker table, one formatting for a job's ``parties`` (``analyze``, ``job``) and a
    diarized interview's (``interview``): how long each spoke, its share, its utterances, its dominant
    emotion, the three largest shares and its alerts ("?" where the count is unknown)."""
    rows = []
    for p in parties:
        if isinstance(p, PartyStats):
            count, dominant, shares = p.stats.window_count, p.stats.dominant_label, p.stats.shares
        else:
            count, dominant, shares = p.count, p.dominant_label, p.shares
        top = ", ".join(f"{label} {share:.0%}" for label, share in _by_value(shares)[:3] if share > 0)
        alerts = "?" if p.alert_count is None else str(p.alert_count)
        rows.append([p.party, f"{p.seconds:.1f} s", f"{p.time_share:.0%}", str(count), dominant or "-", top, alerts])
    _print_table(["SPEAKER", "SPOKE", "SHARE", "UTTERANCES", "DOMINANT", "SHARES", "ALERTS"], rows)


def _by_value(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: -kv[1])


def _print_table(headers: list[str], rows: list[list[str]], header: bool = True) -> None:
    table = ([headers] if header else []) + rows
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


_COMMANDS = {
    "classify": _classify,
    "stream": _stream,
    "analyze": _analyze,
    "job": _job,
    "jobs": _jobs,
    "info": _info,
    "health": _health,
    "interview": _interview,
}
