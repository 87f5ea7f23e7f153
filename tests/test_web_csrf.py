"""The web UI's forms refuse a request whose CSRF token does not match its cookie (double submit):
plain HTTP against the UI of a real server on loopback, no browser needed."""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

from emotion_service.server.app import EmotionServer
from emotion_service.server.auth import hash_token
from emotion_service.server.web import CSRF_COOKIE, SESSION_COOKIE
from tests.conftest import make_settings, recordings
from tests.server_process import free_port

TOKEN = "emo_csrf-analyst"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def http(url: str, cookies: dict[str, str], fields: dict[str, str] | None = None,
         file: tuple[str, bytes] | None = None) -> tuple[int, dict[str, str], str]:  # fmt: skip
    """(status, cookies set, body) of a GET, or of a POST of ``fields`` (multipart with ``file``)."""
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else {}
    data = None
    if fields is not None and file is None:
        data = urllib.parse.urlencode(fields).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif fields is not None and file is not None:
        boundary = uuid.uuid4().hex
        head = f"--{boundary}\r\nContent-Disposition: form-data; name="
        parts = [f'{head}"{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
        disposition = f'{head}"recording"; filename="{file[0]}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        parts.append(disposition.encode() + file[1] + b"\r\n")
        data = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with _OPENER.open(request, timeout=30) as response:
            status, set_cookies, body = response.status, response.headers.get_all("Set-Cookie") or [], response.read()
    except urllib.error.HTTPError as error:
        status, set_cookies, body = error.code, error.headers.get_all("Set-Cookie") or [], error.read()
    jar: SimpleCookie = SimpleCookie()
    for line in set_cookies:
        jar.load(line)
    return status, {k: m.value for k, m in jar.items()}, body.decode()


async def test_forms_whose_csrf_token_does_not_match_its_cookie_are_refused(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMOTION_DATABASE_URL", f"sqlite:///{tmp_path / 'results.db'}")
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(f'[[keys]]\nname = "analyst"\nsha256 = "{hash_token(TOKEN)}"\nscopes = ["read", "classify"]\n')
    port = free_port()
    server = EmotionServer(make_settings(tiny_model, http_port=port, auth_tokens_file=str(tokens)))
    await server.start()
    await server.load_model()
    base = f"http://127.0.0.1:{port}"

    async def call(path: str, cookies: dict[str, str], **kwargs: object) -> tuple[int, dict[str, str], str]:
        return await asyncio.to_thread(http, base + path, cookies, **kwargs)  # type: ignore[arg-type]

    try:
        status, issued, page = await call("/login", {})
        assert status == 200 and CSRF_COOKIE in issued
        csrf = issued[CSRF_COOKIE]
        assert re.search(rf'name="csrf" value="{re.escape(csrf)}"', page), "the form carries the cookie's token"

        # A page of another site posts the form: it cannot read the cookie, so its field differs
        # (or it has no field, or the browser sends no cookie with it).
        login = {"token": TOKEN, "next": "/"}
        for cookies, fields in (
            ({CSRF_COOKIE: csrf}, login | {"csrf": "forged-by-another-site"}),
            ({CSRF_COOKIE: csrf}, login),
            ({}, login | {"csrf": csrf}),
            ({CSRF_COOKIE: ""}, login | {"csrf": ""}),
        ):
            status, set_cookies, body = await call("/login", cookies, fields=fields)
            assert status == 403 and "security token did not match" in body, (cookies, fields)
            assert SESSION_COOKIE not in set_cookies, "a forged login logs no one in"
        status, set_cookies, _ = await call("/login", {CSRF_COOKIE: csrf}, fields=login | {"csrf": csrf})
        assert status == 303 and set_cookies[SESSION_COOKIE]
        assert TOKEN not in set_cookies[SESSION_COOKIE], "the cookie holds a signed session, never the token"

        # Logged in, an upload forged by another site is refused and queues no job.
        session = {CSRF_COOKIE: csrf, SESSION_COOKIE: set_cookies[SESSION_COOKIE]}
        clip = (recordings()[0].name, recordings()[0].read_bytes())
        status, _, body = await call("/analyze", session, fields={"csrf": "forged", "channels": "mix"}, file=clip)
        assert status == 403 and "security token did not match" in body
        assert server.jobs.list(None, 10)[0] == []
        status, _, _ = await call("/logout", session, fields={"csrf": "forged"})
        assert status == 403
        # The page's own form, with the token it was given, is accepted.
        status, _, _ = await call("/analyze", session, fields={"csrf": csrf, "channels": "mix"}, file=clip)
        assert status == 303
        assert len(server.jobs.list(None, 10)[0]) == 1
        status, set_cookies, _ = await call("/logout", session, fields={"csrf": csrf})
        assert status == 303 and set_cookies.get(SESSION_COOKIE, "missing") == "", "logging out clears the session"
    finally:
        await server.stop(grace=1)
