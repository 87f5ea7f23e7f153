"""The web UI in a real browser: the system's Chromium driven by Playwright, against `emotion serve`
with its store, real Classify calls and streams. Checks what a person sees, that the browser logs no
error, and writes screenshots to build/screenshots (test artefacts, not committed)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emotion_client import EmotionClient
from emotion_service.audio import load_audio
from emotion_service.paths import BUNDLED_MODEL
from emotion_service.plugins.store import ResultStore
from emotion_service.plugins.types import Alert, Result
from emotion_service.server.auth import hash_token
from tests.plugin_helpers import fresh_postgres_database
from tests.server_process import free_port, serving
from tests.test_diarization import one_channel_conversation

playwright_sync = pytest.importorskip("playwright.sync_api")

DATA = Path(__file__).parent / "data"
CLIP = DATA / "03-01-05-01-01-01-21.flac"
SCREENSHOTS = Path(__file__).parent.parent / "build" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        message = "no system Chromium: install it with apt-get install chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with playwright_sync.sync_playwright() as p:
        # A fake microphone (a tone) answers getUserMedia without a prompt, for the recorder.
        fake_microphone = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", *fake_microphone])
        yield browser
        browser.close()


def stream_in_background(target: str, recording: Path, session_id: str) -> threading.Thread:
    """Streams ``recording`` at real pace (1 s windows, 0.5 s hop) on a thread of its own, started."""

    def stream() -> None:
        with EmotionClient(target) as client:
            list(client.stream(recording, window_s=1.0, hop_s=0.5, realtime=True, session_id=session_id))

    sender = threading.Thread(target=stream)
    sender.start()
    return sender


@contextmanager
def ui_server(tmp_path: Path, *flags: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """`emotion serve` with the store on and the web UI on a free port; yields (gRPC target, UI URL).
    ``env`` adds settings (a plugin's, say); the store is ``tmp_path``'s results.db (see :func:`stored`)."""
    http = free_port()
    env = {
        "EMOTION_PLUGINS": "store,threshold_alerts",
        "EMOTION_DATABASE_URL": f"sqlite:///{tmp_path / 'results.db'}",
        "EMOTION_STORE_SPOOL_DIR": str(tmp_path / "spool"),
        **(env or {}),
    }
    with serving(BUNDLED_MODEL, "--http-port", str(http), *flags, env=env) as (port, _, _):
        yield f"127.0.0.1:{port}", f"http://127.0.0.1:{http}"


@contextmanager
def page_of(browser: object, width: int = 1440, refusals_expected: bool = False) -> Iterator[object]:
    """A page whose console errors and uncaught exceptions fail the test (``refusals_expected``: except
    the line Chromium logs for a page answered 401/403, which that test asks for)."""
    context = browser.new_context(viewport={"width": width, "height": 900}, timezone_id="Europe/Paris")  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    if refusals_expected:
        errors = [
            e for e in errors if not e.startswith("Failed to load resource: the server responded with a status of 40")
        ]
    assert errors == [], f"the browser logged errors: {errors}"


def shot(page: object, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_sessions_list_and_a_session_timeline(browser: object, tmp_path: Path) -> None:
    with ui_server(tmp_path) as (target, url):
        with EmotionClient(target) as client:
            classified = client.classify(CLIP, metadata={"candidate": "c-42"})
            events = list(client.stream(CLIP, window_s=1.0, hop_s=0.5))
        summary = events[-1]
        windows = [e for e in events if hasattr(e, "index") and not e.silent and not e.skipped]
        with page_of(browser) as page:
            page.goto(url + "/")
            rows = page.locator("table.sessions tbody tr")
            rows.first.wait_for()
            assert rows.count() == 2
            assert page.get_by_role("link", name=summary.session_id).is_visible()
            assert page.get_by_text("candidate: c-42").is_visible()
            # Times are shown in the viewer's zone, not as raw UTC ISO strings.
            assert "T" not in page.locator("table.sessions time").first.inner_text()
            shot(page, "sessions")

            page.get_by_label("Search").fill("c-42")
            page.get_by_role("button", name="Filter").click()
            # The filter is a new page load: count once it has come (a count taken at once can see
            # the old page or none; this raced once in CI).
            page.wait_for_url("**/?q=c-42*")
            playwright_sync.expect(page.locator("table.sessions tbody tr")).to_have_count(1)
            assert page.get_by_role("link", name=classified.session_id).is_visible()

            page.goto(f"{url}/sessions/{summary.session_id}")
            page.locator("#timeline canvas").first.wait_for()
            table_rows = page.locator("#windows tbody tr:not(.silence)")
            assert table_rows.count() == len(windows)
            assert page.get_by_role("link", name="CSV").is_visible()
            page.locator("#timeline").hover()
            shot(page, "session")
            page.goto(url + "/trends")
            page.locator("#trends canvas").first.wait_for()
            assert page.locator("#trend-table tbody tr").count() == 30, "one row per day of the default 30-day range"
            shot(page, "trends")
        with page_of(browser, width=375) as narrow:
            narrow.goto(f"{url}/sessions/{summary.session_id}")
            narrow.locator("#timeline canvas").first.wait_for()
            assert narrow.evaluate("document.documentElement.scrollWidth") <= 375 + 1, "no sideways scrolling at 375 px"
            narrow.keyboard.press("Tab")
            narrow.keyboard.press("Tab")
            assert narrow.evaluate("document.activeElement.textContent") == "Sessions", (
                "the nav is reachable by keyboard"
            )
            shot(narrow, "session-375")
            narrow.goto(url + "/trends")
            narrow.locator("#trends canvas").first.wait_for()
            shot(narrow, "trends-375")


def test_live_page_receives_windows_while_a_stream_runs(browser: object, tmp_path: Path) -> None:
    with ui_server(tmp_path) as (target, url), page_of(browser) as page:
        page.goto(url + "/live")
        page.get_by_text("Connected").wait_for()
        assert page.locator("#live-empty").is_visible()
        ids: list[str] = []

        def stream() -> None:
            with EmotionClient(target) as client:
                for event in client.stream(CLIP, window_s=1.0, hop_s=0.5, realtime=True, session_id="live-demo"):
                    ids.append(getattr(event, "session_id", ""))

        sender = threading.Thread(target=stream)
        sender.start()
        card = page.locator('article.stream[data-session="live-demo"]')
        card.wait_for(timeout=10_000)
        page.wait_for_function(
            "document.querySelector('article.stream[data-session=\"live-demo\"]')?.dataset.windows >= 3",
            timeout=10_000,
        )
        assert sender.is_alive(), "the windows arrived while the stream was still running"
        assert not page.locator("#live-empty").is_visible()
        shot(page, "live")
        sender.join()
        page.get_by_text("· ended").wait_for(timeout=10_000)


SNAPSHOT = """() => ({
  labels: [...document.querySelectorAll('#distribution tbody tr')].map((tr) => tr.dataset.label),
  shares: [...document.querySelectorAll('#distribution tbody tr')].map((tr) => tr.querySelector('.share').textContent.trim()),
  distribution: document.querySelector('#distribution tbody').innerText,
  rows: [...document.querySelectorAll('#windows tbody tr')].map((tr) => [...tr.cells].map((td) => td.textContent.trim())),
  duration: document.getElementById('session-duration').textContent.trim(),
  dominant: document.getElementById('session-dominant').textContent.trim(),
  spans: [...document.querySelectorAll('#lanes rect.span title')].map((t) => t.textContent),
  points: document.getElementById('timeline').timeline.x.length,
  kept: window.notReloaded === true,
})"""


def test_a_running_streams_page_updates_its_header_chart_and_distribution(browser: object, tmp_path: Path) -> None:
    """Not only rows: the header's duration and dominant emotion, the lanes, the score chart and the
    distribution follow the windows as they arrive, without reloading the page."""
    recording = tmp_path / "four-emotions.wav"
    clips = [DATA / f"03-01-0{emotion}-01-01-01-21.flac" for emotion in (5, 4, 1, 3)]  # about 14 s, sent as it plays
    sf.write(recording, np.concatenate([load_audio(clip, 16_000) for clip in clips]), 16_000, subtype="PCM_16")
    with ui_server(tmp_path) as (target, url), page_of(browser) as page:
        sender = stream_in_background(target, recording, "growing")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            streams = page.request.get(url + "/api/live").json()["streams"]
            if any(s["session_id"] == "growing" and len(s["windows"]) >= 2 for s in streams):
                break
            time.sleep(0.1)
        page.goto(f"{url}/sessions/growing")
        page.evaluate("window.notReloaded = true")
        before = page.evaluate(SNAPSHOT)
        page.wait_for_function(
            "(n) => document.querySelectorAll('#windows tbody tr').length >= n",
            arg=len(before["rows"]) + 6,
            timeout=10_000,
        )
        after = page.evaluate(SNAPSHOT)
        assert sender.is_alive() and after["kept"], "the page grew while the stream ran, without a reload"
        assert after["duration"] != before["duration"] and after["distribution"] != before["distribution"], (
            before,
            after,
        )
        labels = after["labels"]
        scored = [cells for cells in after["rows"] if len(cells) == 4 + len(labels)]
        assert len(scored) >= 6
        # The header and the distribution say what the table holds (wins, then the highest mean score).
        assert float(after["duration"].removesuffix(" s")) == pytest.approx(
            max(float(c[2]) for c in after["rows"]), abs=0.051
        )
        wins = {label: sum(cells[3] == label for cells in scored) for label in labels}
        means = {label: sum(float(cells[4 + i]) for cells in scored) / len(scored) for i, label in enumerate(labels)}
        assert after["dominant"] == max(labels, key=lambda label: (wins[label], means[label])), (wins, means)
        assert after["shares"] == [f"{100 * wins[label] / len(scored):.0f} %" for label in labels]
        # The lanes and the score chart hold the new windows too.
        assert after["points"] >= before["points"] + 6
        assert len(after["spans"]) >= 1 and f"–{after['duration'].removesuffix(' s')} s" in " ".join(after["spans"])
        sender.join()
        page.locator(".live-badge").wait_for(state="detached", timeout=10_000)


def test_an_uploaded_recording_gets_a_timeline(browser: object, tmp_path: Path) -> None:
    with ui_server(tmp_path) as (_, url), page_of(browser) as page:
        page.goto(url + "/analyze")
        shot(page, "analyze")
        page.get_by_label("Recording").set_input_files(str(CLIP))
        page.get_by_role("button", name="Analyse").click()
        page.wait_for_url("**/sessions/**")
        page.locator("#timeline").wait_for(timeout=30_000)
        assert page.locator("#windows tbody tr:not(.silence)").count() >= 1
        assert page.get_by_text("job").first.is_visible()


def test_an_uploaded_conversation_is_diarized_into_its_speakers(browser: object, tmp_path: Path) -> None:
    """'One channel, find the speakers' with the count given: a man (actor 21) and a woman (actor 20)
    taking turns in one channel come back as two speakers, each with a lane and a row of their own."""
    recording = tmp_path / "conversation.wav"
    one_channel_conversation(recording)
    with ui_server(tmp_path) as (_, url), page_of(browser) as page:
        page.goto(url + "/analyze")
        page.get_by_label("Recording").set_input_files(str(recording))
        page.get_by_label("one channel, find the speakers").check()
        page.get_by_label("Number of speakers").fill("2")
        page.get_by_role("button", name="Analyse").click()
        page.wait_for_url("**/sessions/**?job=**")
        job_id = page.url.rsplit("job=", 1)[1]
        page.wait_for_function("!document.getElementById('job')", timeout=120_000)
        assert page.request.get(f"{url}/api/jobs/{job_id}").json()["state"] == "succeeded"
        page.locator("#parties").wait_for(timeout=30_000)
        shot(page, "analyze-diarized")
        assert page.locator("#parties tbody tr").evaluate_all("rows => rows.map((r) => r.dataset.party)") == ["S1", "S2"]
        speakers = page.locator("#windows tbody tr:not(.silence)").evaluate_all("rows => rows.map((r) => r.dataset.party)")
        assert set(speakers) == {"S1", "S2"}, speakers
        assert page.locator("#party-filter option").all_inner_texts()[1:] == ["S1", "S2"]


def test_a_recording_from_the_microphone_becomes_a_job(browser: object, tmp_path: Path) -> None:
    with ui_server(tmp_path) as (_, url), page_of(browser) as page:
        page.goto(url + "/analyze")
        record = page.get_by_role("button", name="Record from the microphone")
        record.click()
        page.get_by_text("Recording…").wait_for()
        page.wait_for_timeout(1500)
        page.get_by_role("button", name="Stop recording").click()
        page.get_by_text("press Analyse").wait_for(timeout=10_000)
        assert page.evaluate("document.getElementById('recording').files[0].name") == "recording.wav"
        page.get_by_role("button", name="Analyse").click()
        page.wait_for_url("**/sessions/**?job=**")
        job_id = page.url.rsplit("job=", 1)[1]
        page.wait_for_function("!document.getElementById('job')", timeout=30_000)
        assert page.request.get(f"{url}/api/jobs/{job_id}").json()["state"] == "succeeded"
        # The fake microphone plays a tone: the voice detector may find no speech in it, which the page says.
        # The job's end reloads the page: wait for the new one's result, as #job goes with the old one.
        scored = page.locator("#windows tbody tr:not(.silence)")
        scored.or_(page.get_by_text("no speech was found in it")).first.wait_for(timeout=10_000)
        assert scored.count() >= 1 or page.get_by_text("no speech was found in it").is_visible()


def test_a_missing_or_weak_token_is_refused(browser: object, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        f'[[keys]]\nname = "viewer"\nsha256 = "{hash_token("view-token")}"\nscopes = ["read"]\n'
        f'[[keys]]\nname = "platform"\nsha256 = "{hash_token("classify-token")}"\nscopes = ["classify"]\n'
    )
    with (
        ui_server(tmp_path, "--auth-tokens-file", str(tokens)) as (_, url),
        page_of(browser, refusals_expected=True) as page,
    ):
        page.goto(url + "/")
        page.wait_for_url("**/login**")
        shot(page, "login")
        page.get_by_label("Access token").fill("wrong")
        page.get_by_role("button", name="Log in").click()
        assert page.get_by_text("That token is not known.").is_visible()
        page.get_by_label("Access token").fill("classify-token")
        page.get_by_role("button", name="Log in").click()
        assert page.get_by_text("lacks the 'read' scope").is_visible(), "classify alone does not let one view results"
        page.get_by_role("button", name="Log out").click()
        page.get_by_label("Access token").fill("view-token")
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("heading", name="Sessions").wait_for()
        cookie = next(c for c in page.context.cookies() if c["name"] == "emotion_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert "view-token" not in cookie["value"], "the cookie holds a signed session, not the token"
        page.goto(url + "/analyze")
        assert page.get_by_text("lacks the 'classify' scope").is_visible()
        anonymous = page.context.browser.new_context()
        assert anonymous.request.get(url + "/api/live").status == 401
        anonymous.close()


def test_any_replica_shows_every_replicas_streams_and_sessions(browser: object, tmp_path: Path) -> None:
    with fresh_postgres_database() as database:
        env = {"EMOTION_PLUGINS": "store", "EMOTION_DATABASE_URL": database, "EMOTION_STORE_SPOOL_DIR": str(tmp_path)}
        http_a, http_b = free_port(), free_port()
        with (
            serving(BUNDLED_MODEL, "--http-port", str(http_a), env=env) as (port_a, _, _),
            serving(BUNDLED_MODEL, "--http-port", str(http_b), env=env),
            page_of(browser) as page,
        ):
            page.goto(f"http://127.0.0.1:{http_b}/live")
            page.get_by_text("Connected").wait_for()
            time.sleep(1.0)  # replica B's relay is listening

            def stream() -> None:
                with EmotionClient(f"127.0.0.1:{port_a}") as client:
                    list(client.stream(CLIP, window_s=1.0, hop_s=0.5, realtime=True, session_id="on-replica-a"))

            sender = threading.Thread(target=stream)
            sender.start()
            page.wait_for_function(
                "document.querySelector('article.stream[data-session=\"on-replica-a\"]')?.dataset.windows >= 3",
                timeout=15_000,
            )
            sender.join()
            page.get_by_text("· ended").wait_for(timeout=10_000)
            time.sleep(1.0)  # replica A's store writes the session
            page.goto(f"http://127.0.0.1:{http_b}/")
            assert page.get_by_role("link", name="on-replica-a").is_visible()


LABELS = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
TWO_VOICES = "two-voices"
TEN_MINUTES = "ten-minutes"
INTERVIEW = "interview"


def utterance(session: str, index: int, start: float, end: float, label: str, speaker: str, channel: int = 0) -> Result:
    """A diarized job's utterance: its emotion scored 0.3 + 0.04 * (index % 13) (lines slope), the others 0.08."""
    scores = {other: (0.3 + 0.04 * (index % 13) if other == label else 0.08) for other in LABELS}
    return Result(
        session_id=session, request_id=f"r{index}", kind="utterance", label=label, scores=scores, start_s=start,
        end_s=end, index=index, model_name="test", channel=channel, speaker=speaker,
    )  # fmt: skip


# Thirteen turns (speaker, start, end): some a short pause (0.3 s, under the server's pause) after the
# other speaker's, some alone between pauses of 3.5 s (a point with a gap on both sides).
TURNS = [("S1", 0.0, 2.0), ("S2", 2.3, 4.0), ("S1", 4.3, 6.0), ("S2", 9.5, 11.0), ("S1", 14.5, 16.0),
         ("S2", 19.5, 21.0), ("S2", 21.3, 23.0), ("S1", 23.3, 25.0), ("S2", 28.5, 30.0), ("S1", 33.5, 35.0),
         ("S2", 38.5, 40.0), ("S1", 40.3, 42.0), ("S2", 45.5, 47.0)]  # fmt: skip


def fill(store: ResultStore) -> None:
    """Two speakers taking turns, with an alert of each (S2's at 4.0 s, S1's at 16.0 s); ten minutes of
    150 one-second utterances 4 s apart; an interview of two channels (as tests/test_web_pages.py's)."""
    for i, (speaker, start, end) in enumerate(TURNS):
        label = ("ANG", "HAP")[i % 2] if speaker == "S1" else ("SAD", "NEU")[i % 2]
        store.add_result(utterance(TWO_VOICES, i, start, end, label, speaker))
    for time_s, label, message in ((4.0, "SAD", "S2 sad"), (16.0, "ANG", "S1 angry")):
        store.add_alert(TWO_VOICES, Alert(kind="threshold", message=message, label=label, value=0.7, time_s=time_s))
    for i in range(150):
        store.add_result(utterance(TEN_MINUTES, i, i * 4.0, i * 4.0 + 1.0, LABELS[i % 6], f"S{i % 2 + 1}"))
    index = 0
    for channel, speaker, label in ((0, "S1", "ANG"), (1, "S2", "SAD")):
        for k in range(6):
            start = k * 4.0 + channel * 2.0
            end = start + (1.5 if channel else 1.0)
            store.add_result(utterance(INTERVIEW, index, start, end, label, speaker, channel))
            index += 1
    store.add_alert(INTERVIEW, Alert(kind="threshold", message="anger high", label="ANG", value=0.6, time_s=4.0))


@contextmanager
def stored(tmp_path: Path) -> Iterator[str]:
    """`emotion serve` on a store that :func:`fill` wrote first; yields the UI's URL."""
    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    fill(store)
    store.close()
    with ui_server(tmp_path) as (_, url):
        yield url


# Whether the score chart shows every utterance and joins no two speakers' (the page's own canvas,
# read pixel by pixel): each emotion's series alone in turn, ink at each of its points, none halfway
# between the points of two different speakers' turns that follow each other.
CHART_INK = """async () => {
  const el = document.getElementById('timeline'), t = el.timeline, plot = t.plot;
  const frame = () => new Promise((done) => requestAnimationFrame(() => done()));
  const ink = (x, y) => { const d = plot.ctx.getImageData(Math.round(x) - 1, Math.round(y) - 1, 3, 3).data;
    let alpha = 0; for (let i = 3; i < d.length; i += 4) alpha = Math.max(alpha, d[i]); return alpha > 100; };
  const at = (x, y) => [plot.valToPos(x, 'x', true), plot.valToPos(y, 'y', true)];
  const missing = [], joined = [];
  for (let s = 1; s < plot.series.length; s++) {
    for (let k = 1; k < plot.series.length; k++) plot.setSeries(k, { show: k === s });
    await frame();
    const ys = t.series[t.labels[s - 1]];
    for (let i = 0; i < t.x.length; i++) {
      if (ys[i] === null) continue;
      const [px, py] = at(t.x[i], ys[i]);
      if (!ink(px, py)) missing.push([t.labels[s - 1], t.x[i]]);
      if (i + 1 < t.x.length && ys[i + 1] !== null && t.parties[i + 1] !== t.parties[i]) {
        const [qx, qy] = at(t.x[i + 1], ys[i + 1]);
        if (ink((px + qx) / 2, (py + qy) / 2)) joined.push([t.labels[s - 1], t.x[i], t.x[i + 1]]);
      }
    }
  }
  return { missing, joined, points: t.x.length };
}"""


def test_the_score_chart_shows_every_utterance_and_joins_no_two_speakers(browser: object, tmp_path: Path) -> None:
    """An utterance alone between pauses is a point of its own (drawn, at any width, however dense the
    chart), and no line runs from one speaker's utterance to the other's across a short pause."""
    with stored(tmp_path) as url:
        for session, width in ((TWO_VOICES, 390), (TWO_VOICES, 1280), (TEN_MINUTES, 1280), (TEN_MINUTES, 390)):
            with page_of(browser, width=width) as page:
                page.goto(f"{url}/sessions/{session}")
                page.locator("#timeline canvas").first.wait_for()
                drawn = page.evaluate(CHART_INK)
                assert drawn["points"] >= 13, drawn
                assert drawn["missing"] == [], (session, width, "utterances not drawn", drawn["missing"][:10])
                assert drawn["joined"] == [], (session, width, "two speakers' utterances joined", drawn["joined"])
                assert page.evaluate("document.documentElement.scrollWidth") <= width + 1, (session, width)


ALERTS = """() => [...document.querySelectorAll('#alerts li')].filter((li) => !li.hidden && li.offsetParent).map((li) => {
  const row = document.getElementById(li.querySelector('a').hash.slice(1));
  return { text: li.textContent, target: row ? row.dataset.party : null, shown: Boolean(row && !row.hidden) }; })"""


def test_the_speaker_filter_hides_the_other_speakers_alerts(browser: object, tmp_path: Path) -> None:
    """Alerts carry no speaker: each is its utterance's (the one that ends at its time), so the filter
    keeps one speaker's alerts, whose links point at rows it shows."""
    with stored(tmp_path) as url, page_of(browser) as page:
        page.goto(f"{url}/sessions/{TWO_VOICES}")
        everyone = page.evaluate(ALERTS)
        assert [(a["target"], a["shown"]) for a in everyone] == [("S2", True), ("S1", True)], everyone
        for party, message in (("S2", "S2 sad"), ("S1", "S1 angry")):
            page.goto(f"{url}/sessions/{TWO_VOICES}?party={party}")
            shown = page.evaluate(ALERTS)
            assert [(a["target"], a["shown"]) for a in shown] == [(party, True)], (party, shown)
            assert message in shown[0]["text"]
            assert not page.get_by_text("No alerts were raised").is_visible()
        page.get_by_label("Speaker", exact=True).select_option("")
        assert len(page.evaluate(ALERTS)) == 2


def test_html_reports_fit_a_phone(browser: object, tmp_path: Path) -> None:
    """At 390 px no report (nor the session's page) is wider than the screen: wide tables scroll in a box."""
    with stored(tmp_path) as url, page_of(browser, width=390) as page:
        for session in (TWO_VOICES, INTERVIEW, TEN_MINUTES):
            page.goto(f"{url}/sessions/{session}")
            assert page.evaluate("document.documentElement.scrollWidth") <= 391, session
            page.get_by_role("link", name="HTML report").click()
            page.get_by_role("heading", name=f"Emotion report: session {session}").wait_for()
            page.locator("details").evaluate("(d) => { d.open = true; }")
            assert page.evaluate("document.documentElement.scrollWidth") <= 391, (session, page.url)


def test_the_interview_report_fits_a_phone(browser: object) -> None:
    """The interview integration's self-contained page (per speaker and per question tables, the
    shares bar): at 390 px no wider than the screen."""
    from emotion_client.interview import Segment, render_html
    from emotion_client.interview.report import StreamRecord, build_report
    from emotion_client.results import BatchingInfo, ModelInfo, PartySummary
    from tests.test_interview import _job

    info = ModelInfo("m", "1", tuple(LABELS), 16_000, "cpu", "float32", "X", BatchingInfo(8, 5.0, 64, True), 60.0, 3.0, 1.5)
    served = tuple(PartySummary(p, 1, 1.0, 0.5, "ANG", {}, {}, 1) for p in ("S1", "S2"))
    job = _job([(0.0, 14.0, "S1", "ANG"), (14.0, 25.0, "S2", "SAD"), (30.0, 45.0, "S1", "HAP")], served)
    questions = [Segment("q1", 0.0, 20.0, "Tell me about a time you disagreed with your manager"), Segment("q2", 20.0, 45.0)]
    report = build_report(StreamRecord.from_job(job), questions, info, recording="a-long-recording-name-2026-12-05.wav",
                          window_s=0.0, hop_s=0.0, segmentation="provided")  # fmt: skip
    with page_of(browser, width=390) as page:
        page.set_content(render_html(report))
        assert page.evaluate("document.documentElement.scrollWidth") <= 391


def test_a_running_streams_alerts_are_listed_as_they_are_raised(browser: object, tmp_path: Path) -> None:
    """The header counts a running stream's alerts as they come: the Alerts section lists each one then
    too (not "No alerts were raised." until a reload)."""
    recording = tmp_path / "pause-then-speech.wav"
    clips = [DATA / f"03-01-0{emotion}-01-01-01-21.flac" for emotion in (5, 4, 1)]  # about 10 s of speech
    # Four seconds without speech first: no alert can fire before the page is open.
    speech = [np.zeros(4 * 16_000, np.float32), *(load_audio(clip, 16_000) for clip in clips)]
    sf.write(recording, np.concatenate(speech), 16_000, subtype="PCM_16")
    low = {"EMOTION_THRESHOLD_ALERTS_THRESHOLDS": ",".join(f"{label}=0.3" for label in LABELS)}
    with ui_server(tmp_path, env=low) as (target, url), page_of(browser) as page:
        sender = stream_in_background(target, recording, "alerting")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if any(s["session_id"] == "alerting" for s in page.request.get(url + "/api/live").json()["streams"]):
                break
            time.sleep(0.1)
        page.goto(f"{url}/sessions/alerting")
        page.evaluate("window.notReloaded = true")
        page.wait_for_function("document.querySelectorAll('#alerts li').length >= 1", timeout=15_000)
        assert sender.is_alive() and page.evaluate("window.notReloaded === true"), "listed while it ran, no reload"
        page.wait_for_timeout(300)
        header = int(page.locator("#session-alerts").inner_text().split()[0])
        listed = page.locator("#alerts li")
        assert listed.count() == header >= 1, (listed.all_inner_texts(), header)
        assert not page.get_by_text("No alerts were raised").is_visible()
        first = listed.first.inner_text()
        assert " s " in first and "threshold" in first and ":" in first, first
        sender.join()
