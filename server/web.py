"""The web UI, for the people who read the results: sessions, a live monitor, trends, analyse a recording.

A Starlette app served by uvicorn on a thread and event loop of its own (``--http-port``), on the
same host, with the same TLS files and the same API keys. ``emotion serve`` runs it in a process of
its own (:mod:`emotion_service.server.web_process`), so that rendering a page or an export never
holds up a gRPC call; there ``servicer`` is that process's bridge to the server (the job queue,
the live streams and job submission, under the servicer's names). Pages are Jinja2 templates from the
one template set (the reports' colours and stylesheet); charts are drawn by uPlot, vendored in
``emotion_service/static/vendor/uplot`` so the UI works offline. Every chart has a table beside it.

- ``/``: sessions, newest first, searchable and filterable; ``/sessions/{id}``: one session's
  timeline, distribution, alerts and windows, with downloads (``/downloads/{id}.json`` and
  ``.csv``) and the HTML report (``/reports/{id}``).
- ``/live``: the streams running on this replica, updated by server-sent events (``/events``).
- ``/trends``: sessions, emotions and alerts per day, week or month over a chosen range (dates
  from ``EARLIEST_DAY`` to a year ahead; at most ``MAX_BUCKETS`` rows, coarser buckets past that),
  counted by the database.
- ``/analyze``: upload (or record in the browser) a recording; it becomes a job, through the same
  decoding, limits, batcher and plugins as ``SubmitJob``, and its page shows the timeline.

With token auth on, the UI asks for a token once, checks it against the server's keys, and keeps
a signed, encrypted session (the key's name and scopes, never the token; Fernet with a per-process
key or ``web_session_secret_file``, valid ``SESSION_TTL_S``) in an HttpOnly, SameSite=Strict cookie;
viewing needs the ``read`` scope, ``/analyze`` needs ``classify``. Forms carry a CSRF token (double
submit: a cookie and a hidden field that must match). Request bodies are bounded before they are
held: an upload by its declared size, and as it streams. No audio is ever served.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import copy
import csv
import hashlib
import hmac
import io
import json
import secrets
import socket
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlencode

import grpc
import structlog
import uvicorn
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session as DbSession
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive

from emotion_client.messages import MAX_SPEAKERS
from emotion_client.v1 import emotion_pb2 as pb
from emotion_service.html import FAVICON_SVG, id_url, render
from emotion_service.plugins.reports.documents import session_document, session_html
from emotion_service.plugins.store import ResultStore, StoreError
from emotion_service.plugins.store.schema import AlertRow, ResultRow, SessionRow
from emotion_service.plugins.types import SessionRecord, party_of, summarise_parties
from emotion_service.server.auth import ApiKey, allows, identify
from emotion_service.server.config import Settings
from emotion_service.server.job_queue import JobNotFoundError, eta_seconds
from emotion_service.server.rpc import CANNOT_DIARIZE, JobRequestError
from emotion_service.server.session_view import lanes, tallies

if TYPE_CHECKING:  # the UI's own process never imports the servicer (nor the model's libraries)
    from emotion_service.server.service import EmotionServicer

T = TypeVar("T")

log = structlog.get_logger(__name__)

SESSION_COOKIE = "emotion_session"
CSRF_COOKIE = "emotion_csrf"
# A login lasts this long (the cookie and the signed session both expire).
SESSION_TTL_S = 12 * 3600
PAGE_SIZE = 25
# Form fields beside an upload (CSRF token, channels, the multipart framing): the body may exceed
# the recording limit by this much.
FORM_OVERHEAD_BYTES = 64 * 1024
# Bodies of the forms without a file (login, logout).
MAX_FORM_BYTES = 16 * 1024
# Trends: dates from this day to a year ahead; at most this many rows (coarser buckets past it).
EARLIEST_DAY = date(2000, 1, 1)
MAX_BUCKETS = 400
# A session page shows at most this many windows a page, and a timeline of at most this many
# points (consecutive windows averaged past it).
WINDOWS_PER_PAGE = 1000
MAX_TIMELINE_POINTS = 2000
# The sessions list reads at most this many of the newest matching sessions (the emotion filter
# is applied to them).
MAX_LISTED = 500
# A job's page waits this long after the job succeeded for its results to reach the store.
JOB_STORING_S = 10.0
# A gap between stored windows longer than this many hops is drawn as silence.
SILENCE_GAP_HOPS = 1.5
# A download's file name holds at most this much of its session's id.
FILE_NAME_ID_CHARS = 100


class AnyConvertor(Convertor[str]):
    """A path parameter that takes every character, newlines too (Starlette's ``path`` stops at one):
    a session id is whatever its caller chose, and every session opens its own page."""

    regex = "[\\s\\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("any", AnyConvertor())


class _EmbeddedServer(uvicorn.Server):
    """uvicorn on the UI's thread: the gRPC server owns SIGTERM/SIGINT and stops this one.
    ``beat`` (when set) is called on every tick of its loop (10 a second): a liveness signal."""

    beat: Callable[[], None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def on_tick(self, counter: int) -> bool:
        if self.beat is not None:
            self.beat()
        return await super().on_tick(counter)


class RequestTooLarge(Exception):
    """A request body over its limit (the parser's temporary files go with it)."""

    def __init__(self, size: int | None, limit: int) -> None:
        super().__init__(f"body over {limit} bytes")
        self.size = size
        self.limit = limit


class WebError(Exception):
    """A request the UI answers with a page saying what to change (``status``: 400, 413...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class WebUI:
    """The UI of one replica: reads the results store, the job queue and this replica's live streams."""

    def __init__(
        self,
        settings: Settings,
        servicer: EmotionServicer,
        store_url: str,
        keys: list[ApiKey] | None,
        session_key: bytes | None = None,
    ) -> None:
        self.settings = settings
        self.servicer = servicer
        self.keys = keys
        self._store_url = store_url
        self._store: ResultStore | None = None
        self._server: _EmbeddedServer | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._grpc_loop: asyncio.AbstractEventLoop | None = None
        self._sessions = Fernet(session_key or _session_key(settings.web_session_secret_file))
        self.app = Starlette(
            routes=[
                Route("/", self.sessions),
                # Ids may hold "/" (sent as %2F, decoded before routing) and end in anything (".json",
                # "/report"): the path converter takes them whole, and each view of a session has a
                # prefix of its own, so no id can be read as another id's download or report.
                Route("/sessions/{session_id:any}", self.session),
                Route("/reports/{session_id:any}", self.session_report),
                Route("/downloads/{session_id:any}.json", self.session_json),
                Route("/downloads/{session_id:any}.csv", self.session_csv),
                Route("/favicon.ico", self.favicon),
                Route("/live", self.live),
                Route("/events", self.events),
                Route("/api/live", self.live_state),
                Route("/api/jobs/{job_id}", self.job_state),
                Route("/trends", self.trends),
                Route("/analyze", self.analyze, methods=["GET", "POST"]),
                Route("/login", self.login, methods=["GET", "POST"]),
                Route("/logout", self.logout, methods=["POST"]),
                Mount("/static", StaticFiles(packages=[("emotion_service", "static")]), name="static"),
            ],
            exception_handlers={404: self.not_found},
        )

    @property
    def port(self) -> int:
        """The port it listens on (known once started)."""
        if self._server is None or not self._server.servers:
            return 0
        return self._server.servers[0].sockets[0].getsockname()[1]

    async def start(self, sock: socket.socket | None = None, beat: Callable[[], None] | None = None) -> None:
        """Starts uvicorn on a thread with its own event loop; returns once it listens (on ``sock``,
        bound by the server's process, when given; else on ``http_port``). ``beat`` is called from
        uvicorn's loop ten times a second while it runs (the UI process's heartbeat)."""
        s = self.settings
        self._grpc_loop = asyncio.get_running_loop()
        # The UI's thread shares the interpreter lock with the gRPC loop: hand it over every 1 ms
        # (not 5), so that a call waits less behind a page being rendered.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        config = uvicorn.Config(
            self.app,
            host=s.host,
            port=s.http_port,
            log_config=None,
            access_log=False,
            ssl_certfile=s.tls_cert_file or None,
            ssl_keyfile=s.tls_key_file or None,
            lifespan="off",
            # Open server-sent event streams never end by themselves: a stop waits this long for them.
            timeout_graceful_shutdown=2,
        )
        self._server = _EmbeddedServer(config)
        self._server.beat = beat
        self._thread = threading.Thread(target=self._serve, args=(sock,), name="web-ui", daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                # Why it could not start (e.g. the port is taken: uvicorn exits).
                raise self._failure or RuntimeError("the web UI stopped before it listened")
            await asyncio.sleep(0.01)
        scheme = "https" if s.tls else "http"
        log.info("web_ui_listening", url=f"{scheme}://{s.host}:{self.port}/")

    def _serve(self, sock: socket.socket | None) -> None:
        assert self._server is not None
        try:
            asyncio.run(self._server.serve(sockets=[sock] if sock is not None else None))
        except SystemExit:  # uvicorn exits when it cannot listen (it has logged the reason)
            s = self.settings
            self._failure = OSError(
                f"the web UI cannot listen on {s.host}:{s.http_port} (the port is taken or not allowed): "
                "choose another --http-port (EMOTION_HTTP_PORT)"
            )
        except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises it on the gRPC loop
            self._failure = exc

    async def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            await asyncio.to_thread(self._thread.join)
        if self._store is not None:
            self._store.close()

    @property
    def store(self) -> ResultStore:
        if self._store is None:
            self._store = ResultStore(self._store_url)
        return self._store

    async def _on_grpc_loop(self, call: Callable[[], T]) -> T:
        """``call()`` run on the gRPC server's loop (which owns the live hub), its answer awaited here."""
        assert self._grpc_loop is not None
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(call())
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                done.set_exception(exc)

        self._grpc_loop.call_soon_threadsafe(run)
        return await asyncio.wrap_future(done)

    async def _await_on_grpc_loop(self, coroutine: Awaitable[T]) -> T:
        assert self._grpc_loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self._grpc_loop))  # type: ignore[arg-type]

    # --- pages -------------------------------------------------------------------------------

    async def not_found(self, request: Request, exc: Exception) -> Response:
        """Unknown addresses: the site's page (with its navigation) saying so; JSON under /api."""
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "not found"}, status_code=404)
        return self._not_found_page(
            request, "Page not found", "There is no page at this address: it may have moved, or the link is mistyped."
        )

    def _not_found_page(self, request: Request, title: str, message: str) -> Response:
        return self._page(request, "web/error.html", status=404, title=title, message=message)

    async def favicon(self, request: Request) -> Response:
        return Response(FAVICON_SVG, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    async def sessions(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "read")) is not None:
            return refusal
        q = request.query_params
        search, source, emotion = q.get("q", "").strip(), q.get("source", ""), q.get("emotion", "")
        with_alerts = q.get("alerts") == "1"
        try:
            since, until = _day(q.get("since"), "From"), _day(q.get("until"), "To")
        except WebError as exc:
            return self._page(
                request, "web/error.html", status=exc.status, title="Check the dates", message=exc.message
            )
        page = int(q["page"]) if q.get("page", "").isdigit() and 0 < int(q["page"]) <= MAX_LISTED else 1
        try:
            # Summarised by the database (counts and sums per label), never every window of every session.
            listings = await asyncio.to_thread(
                self.store.session_summaries,
                search,
                _midnight(since) if since else None,
                _midnight(until) + timedelta(days=1) if until else None,
                source,
                with_alerts,
                MAX_LISTED,
            )
        except StoreError as exc:
            return self._page(
                request, "web/error.html", status=503, title="Results store unavailable", message=str(exc)
            )
        if emotion:
            listings = [s for s in listings if s.record.summary.dominant_label == emotion]
        total = len(listings)
        shown = listings[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        labels = sorted({label for s in listings for label in s.record.summary.mean_scores} | set(self._labels()))
        filters = {"q": search, "source": source, "emotion": emotion, "alerts": "1" if with_alerts else ""}
        filters |= {"since": q.get("since", ""), "until": q.get("until", "")}
        return self._page(
            request,
            "web/sessions.html",
            labels=labels,
            rows=[_row(s.record, s.alert_count) for s in shown],
            filters=filters,
            page=page,
            pages=max(1, -(-total // PAGE_SIZE)),
            total=total,
            capped=total >= MAX_LISTED,
            query=lambda **changes: _query({**filters, "page": str(page), **changes}),
        )

    async def session(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "read")) is not None:
            return refusal
        session_id = request.path_params["session_id"]
        record = await self._record(session_id)
        job = None
        if (job_id := request.query_params.get("job")) and self.servicer.jobs is not None:
            with contextlib.suppress(JobNotFoundError):
                job = await asyncio.to_thread(self.servicer.jobs.get, job_id)
        running = session_id in self.servicer.live.running
        if record is None and job is None and not running:
            return self._not_found_page(request, "No such session", _no_session(session_id))
        labels = sorted(record.summary.mean_scores) if record else list(self._labels())
        windows = _with_silences(record, self.settings.hop_s) if record else []
        pages = max(1, -(-len(windows) // WINDOWS_PER_PAGE))
        raw_page = request.query_params.get("page", "")
        page = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) <= pages else 1
        offset = (page - 1) * WINDOWS_PER_PAGE
        shown = windows[offset : page * WINDOWS_PER_PAGE]
        # Rows are numbered in time order (1, 2, 3...), across pages, silences not counted.
        number = sum(not w["silence"] for w in windows[:offset])
        for w in shown:
            if not w["silence"]:
                number += 1
                w["number"] = number
        results = record.summary.results if record else ()
        return self._page(
            request,
            "web/session.html",
            session_id=session_id,
            record=record,
            row=_row(record) if record else None,
            labels=labels,
            timeline=_timeline(windows, labels),
            windows=shown,
            window_page=page,
            window_pages=pages,
            window_count=sum(not w["silence"] for w in windows),
            windows_per_page=WINDOWS_PER_PAGE,
            job={"id": job.id, "state": _shown_job_state(job, record)} if job else None,
            running=running,
            show_channel=bool(record) and (record.kind == "job" or any(r.channel for r in results)),
            show_speaker=any(r.speaker for r in results),
            parties=summarise_parties(results, record.summary.alerts if record else ()),
            lanes=lanes(results, labels, record.summary.duration_s if record else 0.0),
            tallies=tallies(results, labels),
        )

    async def session_json(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "read", api=True)) is not None:
            return refusal
        record = await self._record(request.path_params["session_id"])
        if record is None:
            return JSONResponse({"error": "no such session"}, status_code=404)
        body = await asyncio.to_thread(lambda: json.dumps(session_document(record), indent=2))
        return Response(
            body,
            media_type="application/json",
            headers={"Content-Disposition": _attachment(record.summary.session_id, "json")},
        )

    async def session_csv(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "read", api=True)) is not None:
            return refusal
        record = await self._record(request.path_params["session_id"])
        if record is None:
            return JSONResponse({"error": "no such session"}, status_code=404)
        return Response(
            await asyncio.to_thread(_csv, record),
            media_type="text/csv",
            headers={"Content-Disposition": _attachment(record.summary.session_id, "csv")},
        )

    async def session_report(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "read")) is not None:
            return refusal
        session_id = request.path_params["session_id"]
        record = await self._record(session_id)
        if record is None:
            return self._not_found_page(request, "No such session", _no_session(session_id))
        return HTMLResponse(await asyncio.to_thread(session_html, record))

    async def live(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "read")) is not None:
            return refusal
        return self._page(request, "web/live.html", labels=list(self._labels()))

    async def live_state(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "read", api=True)) is not None:
            return refusal
        running = self.servicer.live.running
        streams = await self._on_grpc_loop(lambda: copy.deepcopy(list(running.values())))
        return JSONResponse({"streams": streams})

    async def events(self, request: Request) -> Response:
        """Server-sent events of this replica's streams (``?session=ID``: one session's only)."""
        if (refusal := self._refuse(request, "read", api=True)) is not None:
            return refusal
        only = request.query_params.get("session", "")
        hub = self.servicer.live

        async def stream() -> AsyncIterator[str]:
            subscriber = hub.subscribe()
            try:
                yield ": connected\n\n"
                while True:
                    try:
                        event = await asyncio.wait_for(subscriber.queue.get(), 15.0)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if only and event["session_id"] != only:
                        continue
                    yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
            finally:
                hub.unsubscribe(subscriber)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def job_state(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "read", api=True)) is not None:
            return refusal
        if self.servicer.jobs is None:
            return JSONResponse({"error": "no job queue"}, status_code=404)
        try:
            job = await asyncio.to_thread(self.servicer.jobs.get, request.path_params["job_id"])
        except JobNotFoundError:
            return JSONResponse({"error": "no such job"}, status_code=404)
        progress = job.done_s / job.total_s if job.total_s else float(job.state == "succeeded")
        eta_s = eta_seconds(job)  # the API's Job.eta_s
        return JSONResponse(
            {"state": job.state, "progress": min(1.0, progress), "eta_s": round(eta_s, 1), "error": job.error or ""}
        )

    async def trends(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "read")) is not None:
            return refusal
        q = request.query_params
        try:
            until = _day(q.get("until"), "To") or datetime.now(UTC).date()
            since = _day(q.get("since"), "From") or max(EARLIEST_DAY, until - timedelta(days=29))
            if since > until:
                raise WebError(400, f"The range starts ({since}) after it ends ({until}): swap the dates.")
        except WebError as exc:
            return self._page(
                request, "web/error.html", status=exc.status, title="Check the dates", message=exc.message
            )
        asked = q.get("by") if q.get("by") in BUCKET_SIZES else "day"
        by = next(
            size
            for size in BUCKET_SIZES[BUCKET_SIZES.index(asked) :]
            if _bucket_count(since, until, size) <= MAX_BUCKETS or size == "month"
        )
        try:
            counts = await asyncio.to_thread(
                _trend_counts, self.store, _midnight(since), _midnight(until) + timedelta(days=1)
            )
        except StoreError as exc:
            return self._page(
                request, "web/error.html", status=503, title="Results store unavailable", message=str(exc)
            )
        buckets = _buckets(counts, since, until, by)
        labels = sorted({label for b in buckets for label in b["shares"]} | set(self._labels()))
        return self._page(
            request,
            "web/trends.html",
            labels=labels,
            buckets=buckets,
            since=since.isoformat(),
            until=until.isoformat(),
            by=by,
            coarsened=asked if by != asked else "",
            max_buckets=MAX_BUCKETS,
            earliest=EARLIEST_DAY.isoformat(),
            latest=_latest_day().isoformat(),
            total_sessions=sum(b["sessions"] for b in buckets),
            total_alerts=sum(b["alerts"] for b in buckets),
        )

    async def analyze(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "classify")) is not None:
            return refusal
        max_bytes = self.settings.max_job_bytes
        limits: dict[str, object] = {"max_mb": _mb(max_bytes), "max_bytes": max_bytes, "max_speakers": MAX_SPEAKERS}
        # A server that cannot diarize says so where the choice is made, not only once a file is sent.
        cannot = await self._await_on_grpc_loop(self.servicer.cannot_diarize())
        limits["no_diarize"] = _CANNOT_DIARIZE_PLAINLY if cannot else ""
        if request.method == "GET":
            return self._page(request, "web/analyze.html", error="", **limits)

        def again(status: int, error: str) -> Response:
            return self._page(request, "web/analyze.html", status=status, error=error, **limits)

        try:
            request = _bounded(request, max_bytes + FORM_OVERHEAD_BYTES)
            # Files go to a temporary file past 1 MiB, and the body is cut off at the limit: an
            # upload is never held whole in memory before it is known to fit.
            async with request.form(max_files=1, max_fields=8, max_part_size=FORM_OVERHEAD_BYTES) as form:
                if not self._csrf_ok(request, form.get("csrf")):
                    return again(403, _CSRF_ERROR)
                upload = form.get("recording")
                if not isinstance(upload, UploadFile) or not upload.filename:
                    return again(400, "Choose a recording first.")
                if upload.size is not None and upload.size > max_bytes:
                    raise RequestTooLarge(upload.size, max_bytes)
                content = await upload.read()
                choice = form.get("channels")
                channels = "separate" if choice == "separate" else "mix"
                diarize = choice == "diarize"  # one channel, the speakers found (SubmitJob's diarize)
                num_speakers, problem = _speaker_count(str(form.get("num_speakers") or ""), diarize)
                if problem:
                    return again(400, problem)
                recording = pb.Recording(name=upload.filename, content=content)
                del content
        except RequestTooLarge as exc:
            log.info("web_upload_refused", declared_bytes=exc.size, limit_bytes=max_bytes)
            refused = again(413, _too_large(exc.size, max_bytes))
            refused.headers["Connection"] = "close"  # the rest of the body is not read: this connection ends
            return refused
        except MultiPartException as exc:
            return again(400, f"The form could not be read ({exc}): reload the page and try again.")
        except ClientDisconnect:
            return Response(status_code=400)
        key = self._key(request)
        try:
            job = await self._await_on_grpc_loop(
                self.servicer.submit_job(
                    [recording],
                    channels,
                    {"source": "web upload"},
                    owner=key.name if key else "",
                    may_join_any_session=key is None or allows(key, "admin"),
                    diarize=diarize,
                    num_speakers=num_speakers,
                )
            )
        except JobRequestError as exc:
            if exc.code == grpc.StatusCode.FAILED_PRECONDITION and str(exc).startswith(CANNOT_DIARIZE):
                # Its reason is a pip command: the operator's to act on, not the person uploading.
                log.warning("web_diarize_refused", reason=str(exc))
                return again(400, _CANNOT_DIARIZE_PLAINLY)
            return again(400, str(exc))
        return RedirectResponse(f"/sessions/{id_url(job.session_id)}?job={quote(job.id, safe='')}", status_code=303)

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self._page(request, "web/login.html", error="", next=_safe_next(request.query_params.get("next")))
        form = await self._small_form(request)
        target = _safe_next(str(form.get("next", "/")))
        if not self._csrf_ok(request, form.get("csrf")):
            return self._page(request, "web/login.html", status=403, error=_CSRF_ERROR, next=target)
        token = str(form.get("token", "")).strip()
        key = identify(self.keys or [], token) if token else None
        if key is None:
            log.info("web_login_refused")
            return self._page(request, "web/login.html", status=401, error="That token is not known.", next=target)
        log.info("web_login", client=key.name)
        response = RedirectResponse(target, status_code=303)
        # The session names the key and its scopes; the token itself is never stored in the browser.
        # The key's hash, not only its name: a token rotated or revoked under the same name ends the session.
        session = json.dumps({"name": key.name, "sha256": key.sha256, "scopes": sorted(key.scopes),
                              "nonce": secrets.token_urlsafe(8)})  # fmt: skip
        response.set_cookie(
            SESSION_COOKIE,
            self._sessions.encrypt(session.encode()).decode(),
            max_age=SESSION_TTL_S,
            httponly=True,
            samesite="strict",
            secure=self.settings.tls,
            path="/",
        )
        return response

    async def logout(self, request: Request) -> Response:
        form = await self._small_form(request)
        if not self._csrf_ok(request, form.get("csrf")):
            return HTMLResponse(_CSRF_ERROR, status_code=403)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=self.settings.tls)
        return response

    # --- helpers -----------------------------------------------------------------------------

    async def _small_form(self, request: Request) -> dict[str, Any]:
        """A form without a file (login, logout), its body bounded; empty when it is not readable."""
        try:
            async with _bounded(request, MAX_FORM_BYTES).form(max_files=0, max_fields=8) as form:
                return dict(form)
        except (MultiPartException, ClientDisconnect):
            return {}

    def _key(self, request: Request) -> ApiKey | None:
        """The caller's key: a bearer token (scripts), else the signed session of the cookie."""
        if self.keys is None:
            return None
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
            return identify(self.keys, token) if token else None
        cookie = request.cookies.get(SESSION_COOKIE, "")
        if not cookie:
            return None
        try:
            session = json.loads(self._sessions.decrypt(cookie.encode(), ttl=SESSION_TTL_S))
        except (InvalidToken, ValueError):
            return None
        # The key must still be one of the server's, and the session never grants more than it has now.
        key = next((k for k in self.keys if k.name == session.get("name") and k.sha256 == session.get("sha256")), None)
        if key is None:
            return None
        return ApiKey(key.name, key.sha256, key.scopes & frozenset(session.get("scopes", ())))

    def _refuse(self, request: Request, scope: str, api: bool = False) -> Response | None:
        """None when the caller may do what ``scope`` guards; else the login page, or 401/403."""
        if self.keys is None:
            return None
        key = self._key(request)
        if key is None:
            if api:
                return JSONResponse({"error": "a token is needed: log in at /login"}, status_code=401)
            return RedirectResponse(f"/login?next={quote(request.url.path, safe='/')}", status_code=303)
        if not allows(key, scope):
            log.info("web_refused", client=key.name, scope=scope, path=request.url.path)
            message = f"The token of {key.name!r} lacks the {scope!r} scope this page needs."
            if api:
                return JSONResponse({"error": message}, status_code=403)
            return self._page(request, "web/error.html", status=403, title="Not allowed", message=message)
        structlog.contextvars.bind_contextvars(client=key.name)
        return None

    def _csrf_ok(self, request: Request, field: Any) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        return bool(cookie) and isinstance(field, str) and hmac.compare_digest(cookie, field)

    def _page(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        labels = context.pop("labels", list(self._labels()))
        html = render(
            template,
            labels,
            csrf=csrf,
            path=request.url.path,
            auth=self.keys is not None,
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        if CSRF_COOKIE not in request.cookies:
            response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=self.settings.tls)
        return response

    def _labels(self) -> tuple[str, ...]:
        state = self.servicer.state
        return tuple(state.backend.info.labels) if state is not None else ()

    async def _record(self, session_id: str) -> SessionRecord | None:
        try:
            return await asyncio.to_thread(self.store.session, session_id)
        except StoreError:
            return None


def _session_key(secret_file: str) -> bytes:
    """The Fernet key that signs and encrypts login sessions: from ``web_session_secret_file`` (so
    that replicas behind one load balancer accept each other's sessions), else random per process."""
    if not secret_file:
        return Fernet.generate_key()
    secret = Path(secret_file).read_bytes().strip()
    return base64.urlsafe_b64encode(hashlib.sha256(b"emotion web session\0" + secret).digest())


def _bounded(request: Request, limit: int) -> Request:
    """``request`` whose body is refused past ``limit`` bytes: at once from its Content-Length, else
    (chunked) as it streams, by :class:`RequestTooLarge` from the first chunk over."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(int(declared), limit)
    receive = request.receive
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise RequestTooLarge(None, limit)
        return message

    bounded: Receive = counted
    return Request(request.scope, bounded)


def _mb(size: int) -> str:
    """A size in megabytes as people and their file managers count them (10^6 bytes)."""
    return f"{size / 1e6:.0f} MB" if size >= 10_000_000 else f"{size / 1e6:.1f} MB"


def _too_large(size: int | None, limit: int) -> str:
    what = f"This recording is {_mb(size)}" if size else "This recording is larger than that"
    return (
        f"{what}; the most this page takes is {_mb(limit)}. Shorten or compress it (FLAC or MP3), "
        "or have it submitted as a job by path (job_input_dir)."
    )


def _speaker_count(text: str, diarize: bool) -> tuple[int, str]:
    """The upload form's number of speakers: (the count, 0 when blank: the server finds out; a
    sentence for the page when it cannot be used, else "")."""
    text = text.strip()
    if not text:
        return 0, ""
    if not diarize:
        return 0, (
            "A number of speakers is only used with 'one channel, find the speakers': choose that, "
            "or leave the number blank."
        )
    if len(text) > 2 or not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_SPEAKERS:
        return 0, (
            f"The number of speakers must be a whole number from 1 to {MAX_SPEAKERS} "
            f"(got {text[:20]!r}), or blank to have the speakers counted."
        )
    return int(text), ""


_CANNOT_DIARIZE_PLAINLY = (
    "This server cannot find the speakers in a recording: its speaker models are missing or not the version it needs. "
    "Choose 'one speaker track' or 'one party per channel', or ask whoever runs the service to install them."
)
_CSRF_ERROR = "The form expired (its security token did not match): reload the page and try again."


def _safe_next(target: str | None) -> str:
    """Only paths of this site: an open redirect would let a link log a person into somewhere else."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _shown_job_state(job: Any, record: SessionRecord | None) -> str:
    """A job's state on its session's page. One that succeeded a moment ago (``JOB_STORING_S``) whose
    results the store has not written yet is shown as ``storing``: the page keeps following it, and
    reloads until they are there (the store writes on its own thread, after the job's end)."""
    if job.state == "succeeded" and record is None and datetime.now(UTC) - job.updated_at < timedelta(seconds=JOB_STORING_S):
        return "storing"
    return str(job.state)


def _no_session(session_id: str) -> str:
    return f"No session {session_id!r} in the results store: it may have been erased, or its id is mistyped."


def _attachment(session_id: str, extension: str) -> str:
    """A download's Content-Disposition: the id's characters a file name cannot hold become "_", and
    the id is cut to :data:`FILE_NAME_ID_CHARS` (file systems hold names of 255 bytes)."""
    short = session_id[:FILE_NAME_ID_CHARS]
    name = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in short)
    return f"attachment; filename=\"session-{name}.{extension}\"; filename*=UTF-8''{quote('session-' + short + '.' + extension, safe='')}"



def _query(values: dict[str, str]) -> str:
    return "?" + urlencode({k: v for k, v in values.items() if v})


def _row(record: SessionRecord, alerts: int | None = None) -> dict[str, Any]:
    """A session's row of the list (``alerts``: its alerts counted, when its summary holds none)."""
    s = record.summary
    return {
        "id": s.session_id,
        "started_at": record.started_at.isoformat(),
        "duration_s": s.duration_s,
        "dominant": s.dominant_label,
        "alerts": len(s.alerts) if alerts is None else alerts,
        "source": record.kind,
        "metadata": s.metadata,
        "windows": s.window_count,
        "end_reason": s.end_reason,
        "shares": s.shares,
        "mean_scores": s.mean_scores,
    }


def _with_silences(record: SessionRecord, hop_s: float) -> list[dict[str, Any]]:
    """Every result in time order, with the pauses between them (gaps over ``SILENCE_GAP_HOPS``
    hops: nothing was stored there) as rows of their own: what the chart and the table both show.
    A stored result without speech is such a row too (``no_speech``): it claims no emotion."""
    rows: list[dict[str, Any]] = []
    previous_end = None
    for r in sorted(record.summary.results, key=lambda r: (r.start_s, r.channel)):
        if previous_end is not None and r.start_s - previous_end > SILENCE_GAP_HOPS * hop_s:
            rows.append({"silence": True, "start_s": previous_end, "end_s": r.start_s})
        if r.no_speech:
            rows.append({"silence": True, "no_speech": True, "start_s": r.start_s, "end_s": r.end_s, "result": r})
        else:
            rows.append({"silence": False, "result": r})
        previous_end = r.end_s
    return rows


def _timeline(rows: list[dict[str, Any]], labels: list[str]) -> dict[str, Any]:
    """uPlot's columns: window mid-times, and each label's score, with a null where a pause was
    (so the line breaks there: a pause is drawn as a pause, not bridged); ``parties`` names each
    point's speaker or channel (empty for a pause), so the speaker filter can draw one party's."""
    x: list[float] = []
    series: dict[str, list[float | None]] = {label: [] for label in labels}
    parties: list[str] = []
    if len(rows) > MAX_TIMELINE_POINTS:
        return _averaged_timeline(rows, labels, -(-len(rows) // MAX_TIMELINE_POINTS))
    for row in rows:
        if row["silence"]:
            x.append((row["start_s"] + row["end_s"]) / 2)
            parties.append("")
            for label in labels:
                series[label].append(None)
            continue
        r = row["result"]
        x.append(round((r.start_s + r.end_s) / 2, 3))
        parties.append(party_of(r))
        for label in labels:
            series[label].append(round(r.scores.get(label, 0.0), 4))
    return {"x": x, "series": series, "parties": parties}


def _averaged_timeline(rows: list[dict[str, Any]], labels: list[str], every: int) -> dict[str, Any]:
    """A long session's timeline in at most ``MAX_TIMELINE_POINTS`` points: each the mean of
    ``every`` consecutive windows (a null where they were all pauses); the table keeps every window."""
    x: list[float] = []
    series: dict[str, list[float | None]] = {label: [] for label in labels}
    for i in range(0, len(rows), every):
        chunk = rows[i : i + every]
        scored = [row["result"] for row in chunk if not row["silence"]]
        first, last = chunk[0], chunk[-1]
        start = first["start_s"] if first["silence"] else first["result"].start_s
        end = last["end_s"] if last["silence"] else last["result"].end_s
        x.append(round((start + end) / 2, 3))
        for label in labels:
            mean = sum(r.scores.get(label, 0.0) for r in scored) / len(scored) if scored else None
            series[label].append(None if mean is None else round(mean, 4))
    return {"x": x, "series": series, "averaged": every}


def _latest_day() -> date:
    return datetime.now(UTC).date() + timedelta(days=366)


def _day(text: str | None, name: str) -> date | None:
    """A date of a form (``YYYY-MM-DD``) between ``EARLIEST_DAY`` and a year ahead; None when empty;
    :class:`WebError` (400) saying what is wrong otherwise."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise WebError(400, f"{name}: {text[:40]!r} is not a date; use YYYY-MM-DD.") from None
    if not EARLIEST_DAY <= day <= _latest_day():
        raise WebError(400, f"{name}: {day} is out of range; choose a date from {EARLIEST_DAY} to {_latest_day()}.")
    return day


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


BUCKET_SIZES = ("day", "week", "month")


def _bucket_start(day: date, by: str) -> date:
    if by == "week":
        return day - timedelta(days=day.weekday())
    if by == "month":
        return day.replace(day=1)
    return day


def _next_bucket(day: date, by: str) -> date:
    if by == "month":
        return date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return day + timedelta(days=7 if by == "week" else 1)


def _bucket_count(since: date, until: date, by: str) -> int:
    if by == "month":
        return (until.year - since.year) * 12 + until.month - since.month + 1
    start = _bucket_start(since, by)
    return (until - start).days // (7 if by == "week" else 1) + 1


def _csv(record: SessionRecord) -> str:
    labels = sorted(record.summary.mean_scores)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["index", "channel", "speaker", "start_s", "end_s", "label", "no_speech", "voiced_fraction", *labels])
    for r in record.summary.results:
        voiced = "" if r.voiced_fraction is None else f"{r.voiced_fraction:.4f}"
        # A result without speech claims no emotion: its label and scores stay empty, not 0.
        scores = [""] * len(labels) if r.no_speech else [f"{r.scores.get(label, 0.0):.4f}" for label in labels]
        writer.writerow([r.index, r.channel, r.speaker, f"{r.start_s:.3f}", f"{r.end_s:.3f}", r.label,
                         str(r.no_speech).lower(), voiced, *scores])  # fmt: skip
    return out.getvalue()


class TrendCounts:
    """Per UTC day: sessions started, their alerts, and the windows each label won (counted by the database)."""

    def __init__(self) -> None:
        self.sessions: Counter[date] = Counter()
        self.alerts: Counter[date] = Counter()
        self.wins: dict[date, Counter[str]] = defaultdict(Counter)


def _trend_counts(store: ResultStore, start: datetime, end: datetime) -> TrendCounts:
    """Three grouped queries over ``[start, end)``: rows per day (and label), never the results themselves."""
    day = func.date(SessionRow.started_at)
    in_range = (SessionRow.started_at >= start) & (SessionRow.started_at < end)
    counts = TrendCounts()

    def as_date(value: Any) -> date:
        return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])

    try:
        with DbSession(store.engine) as db:
            for when, n in db.execute(select(day, func.count()).where(in_range).group_by(day)):
                counts.sessions[as_date(when)] += n
            joined = (
                select(day, func.count()).select_from(AlertRow).join(SessionRow, AlertRow.session_id == SessionRow.id)
            )
            for when, n in db.execute(joined.where(in_range).group_by(day)):
                counts.alerts[as_date(when)] += n
            wins = select(day, ResultRow.label, func.count()).select_from(ResultRow)
            # A result without speech won nothing: it is no emotion, not an empty one.
            wins = wins.join(SessionRow, ResultRow.session_id == SessionRow.id).where(ResultRow.no_speech.is_(False))
            for when, label, n in db.execute(wins.where(in_range).group_by(day, ResultRow.label)):
                counts.wins[as_date(when)][label] += n
    except DBAPIError as exc:  # the database is away or refuses: the page says so (503)
        raise StoreError(f"the results store could not be read: {type(exc).__name__}") from exc
    return counts


def _buckets(counts: TrendCounts, since: date, until: date, by: str) -> list[dict[str, Any]]:
    """Per day, ISO week or month: sessions, alerts, and the share of windows each emotion won."""
    sessions: Counter[date] = Counter()
    alerts: Counter[date] = Counter()
    wins: dict[date, Counter[str]] = defaultdict(Counter)
    for day, n in counts.sessions.items():
        sessions[_bucket_start(day, by)] += n
    for day, n in counts.alerts.items():
        alerts[_bucket_start(day, by)] += n
    for day, labels in counts.wins.items():
        wins[_bucket_start(day, by)].update(labels)
    buckets = []
    day = _bucket_start(since, by)
    while day <= until:
        won = wins.get(day, Counter())
        total = sum(won.values())
        buckets.append(
            {
                "start": day.isoformat(),
                "sessions": sessions.get(day, 0),
                "alerts": alerts.get(day, 0),
                "shares": {label: count / total for label, count in won.items()} if total else {},
            }
        )
        day = _next_bucket(day, by)
    return buckets
