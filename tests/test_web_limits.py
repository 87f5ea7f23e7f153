"""The web UI's doors are bounded and never stall the API: uploads refused before they are held,
far dates refused with a 400, wide ranges counted in coarser buckets, pages served off the gRPC
event loop, and a login cookie that holds a signed session, not the token. Plain HTTP against a
real server on loopback (the `emotion serve` process, or the server in this process), no browser."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from emotion_client import EmotionClient
from emotion_service.paths import BUNDLED_MODEL
from emotion_service.server.app import EmotionServer
from emotion_service.server.auth import hash_token
from emotion_service.server.web import CSRF_COOKIE, MAX_BUCKETS, SESSION_COOKIE
from tests.conftest import make_settings, recordings
from tests.server_process import free_port, peak_rss_mb, rss_mb, serving
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
        before = reset_peak(proc.pid)
        started = time.monotonic()
        status, body, _ = post_bomb(http_port, BOMB, chunked=False, send_body=False)
        assert status == 413, body[:300]
        assert "the most this page takes is 64 MB" in body and "300 MB" in body
        assert "<" not in re.search(r'role="alert">([^<]*)<', body).group(1), "a plain sentence, no reprs"
        status, body, _ = post_bomb(http_port, BOMB, chunked=False)
        assert status == 413
        status, body, sent = post_bomb(http_port, BOMB, chunked=True)
        assert status == 413 and "the most this page takes is 64 MB" in body, body[:300]
        assert sent < LIMIT + 32 * MiB, f"the chunked body was read past the limit: {sent / MiB:.0f} MiB taken"
        grown = peak_rss_mb(proc.pid) - before
        took = time.monotonic() - started
    print(f"\nweb upload bombs ({took:.1f} s): peak RSS grew {grown:.1f} MiB over {before:.0f} MiB")
    assert grown < 100, f"refusing the uploads took {grown:.0f} MiB"


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


async def test_pages_are_served_while_the_grpc_loop_is_busy(ui: tuple[EmotionServer, str]) -> None:
    """This test's loop is the gRPC server's: blocking it here, pages must still be answered (the UI
    runs on its own thread and loop), so that rendering a page never holds up a gRPC call either."""
    _, base = ui
    cookies = await login(base)
    started = time.monotonic()
    # A synchronous call on the gRPC loop: nothing else runs on it until it returns.
    status, _, body = http(base + "/trends", cookies)
    assert status == 200 and "Trends" in body
    status, _, _ = http(base + "/", cookies)
    assert status == 200
    assert time.monotonic() - started < 10


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
