"""The web UI, for the people who read the results: sessions, a live monitor, trends, analyse a recording.

A Starlette app served by uvicorn in the gRPC server's own event loop (``--http-port``), on the
same host, with the same TLS files and the same API keys. Pages are Jinja2 templates from the
one template set (the reports' colours and stylesheet); charts are drawn by uPlot, vendored in
``emotion_service/static/vendor/uplot`` so the UI works offline. Every chart has a table beside it.

- ``/``: sessions, newest first, searchable and filterable; ``/sessions/{id}``: one session's
  timeline, distribution, alerts and windows, with downloads (JSON, CSV, the HTML report).
- ``/live``: the streams running on this replica, updated by server-sent events (``/events``).
- ``/trends``: sessions, emotions and alerts per day or week over a chosen range.
- ``/analyze``: upload (or record in the browser) a recording; it becomes a job, through the same
  decoding, limits, batcher and plugins as ``SubmitJob``, and its page shows the timeline.

With token auth on, the UI asks for a token once and keeps it in an HttpOnly, SameSite=Strict
cookie; viewing needs the ``read`` scope, ``/analyze`` needs ``classify``. Forms carry a CSRF
token (double submit: a cookie and a hidden field that must match). No audio is ever served.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hmac
import io
import json
import secrets
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from emotion_client.v1 import emotion_pb2 as pb
from emotion_service.html import render
from emotion_service.plugins.reports.documents import session_document, session_html
from emotion_service.plugins.store import ResultStore, StoreError
from emotion_service.plugins.types import SessionRecord
from emotion_service.server.auth import ApiKey, allows, identify
from emotion_service.server.config import Settings
from emotion_service.server.job_queue import JobNotFoundError
from emotion_service.server.service import EmotionServicer, JobRequestError

log = structlog.get_logger(__name__)

TOKEN_COOKIE = "emotion_token"
CSRF_COOKIE = "emotion_csrf"
PAGE_SIZE = 25
# The sessions list reads at most this many of the newest matching sessions (the emotion filter
# is applied to them).
MAX_LISTED = 500
# A gap between stored windows longer than this many hops is drawn as silence.
SILENCE_GAP_HOPS = 1.5


class _EmbeddedServer(uvicorn.Server):
    """uvicorn in the gRPC server's loop: the gRPC server owns SIGTERM/SIGINT and stops this one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebUI:
    """The UI of one replica: reads the results store, the job queue and this replica's live streams."""

    def __init__(
        self, settings: Settings, servicer: EmotionServicer, store_url: str, keys: list[ApiKey] | None
    ) -> None:
        self.settings = settings
        self.servicer = servicer
        self.keys = keys
        self._store_url = store_url
        self._store: ResultStore | None = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/", self.sessions),
                Route("/sessions/{session_id}.json", self.session_json),
                Route("/sessions/{session_id}.csv", self.session_csv),
                Route("/sessions/{session_id}/report", self.session_report),
                Route("/sessions/{session_id}", self.session),
                Route("/live", self.live),
                Route("/events", self.events),
                Route("/api/live", self.live_state),
                Route("/api/jobs/{job_id}", self.job_state),
                Route("/trends", self.trends),
                Route("/analyze", self.analyze, methods=["GET", "POST"]),
                Route("/login", self.login, methods=["GET", "POST"]),
                Route("/logout", self.logout, methods=["POST"]),
                Mount("/static", StaticFiles(packages=[("emotion_service", "static")]), name="static"),
            ]
        )

    @property
    def port(self) -> int:
        """The port it listens on (known once started)."""
        if self._server is None or not self._server.servers:
            return 0
        return self._server.servers[0].sockets[0].getsockname()[1]

    async def start(self) -> None:
        s = self.settings
        config = uvicorn.Config(
            self.app,
            host=s.host,
            port=s.http_port,
            log_config=None,
            access_log=False,
            ssl_certfile=s.tls_cert_file or None,
            ssl_keyfile=s.tls_key_file or None,
            lifespan="off",
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(), name="web-ui")
        while not self._server.started:
            if self._task.done():
                await self._task  # raises why it could not start (e.g. the port is taken)
            await asyncio.sleep(0.01)
        scheme = "https" if s.tls else "http"
        log.info("web_ui_listening", url=f"{scheme}://{s.host}:{self.port}/")

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        if self._store is not None:
            self._store.close()

    @property
    def store(self) -> ResultStore:
        if self._store is None:
            self._store = ResultStore(self._store_url)
        return self._store

    # --- pages -------------------------------------------------------------------------------

    async def sessions(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "read")) is not None:
            return refusal
        q = request.query_params
        search, source, emotion = q.get("q", "").strip(), q.get("source", ""), q.get("emotion", "")
        with_alerts = q.get("alerts") == "1"
        since, until = _day(q.get("since")), _day(q.get("until"))
        page = int(q["page"]) if q.get("page", "").isdigit() and int(q["page"]) > 0 else 1
        try:
            records = await asyncio.to_thread(
                self.store.find_sessions,
                search,
                since,
                until + timedelta(days=1) if until else None,
                source,
                with_alerts,
                MAX_LISTED,
            )
        except StoreError as exc:
            return self._page(
                request, "web/error.html", status=503, title="Results store unavailable", message=str(exc)
            )
        if emotion:
            records = [r for r in records if r.summary.dominant_label == emotion]
        total = len(records)
        shown = records[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        labels = sorted({label for r in records for label in r.summary.mean_scores} | set(self._labels()))
        filters = {"q": search, "source": source, "emotion": emotion, "alerts": "1" if with_alerts else ""}
        filters |= {"since": q.get("since", ""), "until": q.get("until", "")}
        return self._page(
            request,
            "web/sessions.html",
            labels=labels,
            rows=[_row(r) for r in shown],
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
            return self._page(
                request,
                "web/error.html",
                status=404,
                title="No such session",
                message=f"No session {session_id!r} in the results store: it may have been erased, or its id is mistyped.",
            )
        labels = sorted(record.summary.mean_scores) if record else list(self._labels())
        windows = _with_silences(record, self.settings.hop_s) if record else []
        return self._page(
            request,
            "web/session.html",
            session_id=session_id,
            record=record,
            row=_row(record) if record else None,
            labels=labels,
            timeline=_timeline(windows, labels),
            windows=windows,
            job={"id": job.id, "state": job.state} if job else None,
            running=running,
        )

    async def session_json(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "read", api=True)) is not None:
            return refusal
        record = await self._record(request.path_params["session_id"])
        if record is None:
            return JSONResponse({"error": "no such session"}, status_code=404)
        return Response(
            json.dumps(session_document(record), indent=2),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="session-{record.summary.session_id}.json"'},
        )

    async def session_csv(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "read", api=True)) is not None:
            return refusal
        record = await self._record(request.path_params["session_id"])
        if record is None:
            return JSONResponse({"error": "no such session"}, status_code=404)
        labels = sorted(record.summary.mean_scores)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["index", "channel", "start_s", "end_s", "label", *labels])
        for r in record.summary.results:
            writer.writerow([r.index, r.channel, f"{r.start_s:.3f}", f"{r.end_s:.3f}", r.label,
                             *(f"{r.scores.get(label, 0.0):.4f}" for label in labels)])  # fmt: skip
        return Response(
            out.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="session-{record.summary.session_id}.csv"'},
        )

    async def session_report(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "read")) is not None:
            return refusal
        record = await self._record(request.path_params["session_id"])
        if record is None:
            return HTMLResponse("<p>No such session.</p>", status_code=404)
        return HTMLResponse(await asyncio.to_thread(session_html, record))

    async def live(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "read")) is not None:
            return refusal
        return self._page(request, "web/live.html", labels=list(self._labels()))

    async def live_state(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "read", api=True)) is not None:
            return refusal
        return JSONResponse({"streams": list(self.servicer.live.running.values())})

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
        return JSONResponse({"state": job.state, "progress": min(1.0, progress), "error": job.error or ""})

    async def trends(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "read")) is not None:
            return refusal
        q = request.query_params
        until = _day(q.get("until")) or datetime.now(UTC).date()
        since = _day(q.get("since")) or until - timedelta(days=29)
        by = q.get("by", "day") if q.get("by") in ("day", "week") else "day"
        start = datetime(since.year, since.month, since.day, tzinfo=UTC)
        end = datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1)
        try:
            records = await asyncio.to_thread(self.store.sessions_since, start, end)
        except StoreError as exc:
            return self._page(
                request, "web/error.html", status=503, title="Results store unavailable", message=str(exc)
            )
        buckets = _buckets(records, since, until, by)
        labels = sorted({label for r in records for label in r.summary.mean_scores} | set(self._labels()))
        return self._page(
            request,
            "web/trends.html",
            labels=labels,
            buckets=buckets,
            since=since.isoformat(),
            until=until.isoformat(),
            by=by,
            total_sessions=len(records),
            total_alerts=sum(len(r.summary.alerts) for r in records),
        )

    async def analyze(self, request: Request) -> Response:
        if (refusal := self._refuse(request, "classify")) is not None:
            return refusal
        if request.method == "GET":
            return self._page(request, "web/analyze.html", error="", max_mb=self.settings.max_job_bytes // 2**20)
        async with request.form(max_files=1, max_part_size=self.settings.max_job_bytes) as form:
            if not self._csrf_ok(request, form.get("csrf")):
                return self._page(request, "web/analyze.html", status=403, error=_CSRF_ERROR, max_mb=0)
            upload = form.get("recording")
            if not isinstance(upload, UploadFile) or not upload.filename:
                return self._page(request, "web/analyze.html", status=400, error="Choose a recording first.", max_mb=0)
            content = await upload.read()
            channels = "separate" if form.get("channels") == "separate" else "mix"
            recording = pb.Recording(name=upload.filename, content=content)
        try:
            job = await self.servicer.submit_job([recording], channels, {"source": "web upload"})
        except JobRequestError as exc:
            return self._page(request, "web/analyze.html", status=400, error=str(exc), max_mb=0)
        return RedirectResponse(f"/sessions/{job.session_id}?job={job.id}", status_code=303)

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self._page(request, "web/login.html", error="", next=_safe_next(request.query_params.get("next")))
        form = await request.form()
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
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", secure=self.settings.tls, path="/")
        return response

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        if not self._csrf_ok(request, form.get("csrf")):
            return HTMLResponse(_CSRF_ERROR, status_code=403)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(TOKEN_COOKIE, path="/")
        return response

    # --- helpers -----------------------------------------------------------------------------

    def _refuse(self, request: Request, scope: str, api: bool = False) -> Response | None:
        """None when the caller may do what ``scope`` guards; else the login page, or 401/403."""
        if self.keys is None:
            return None
        token = request.cookies.get(TOKEN_COOKIE, "")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
        key = identify(self.keys, token) if token else None
        if key is None:
            if api:
                return JSONResponse({"error": "a token is needed: log in at /login"}, status_code=401)
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
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


_CSRF_ERROR = "The form expired (its security token did not match): reload the page and try again."


def _safe_next(target: str | None) -> str:
    """Only paths of this site: an open redirect would let a link log a person into somewhere else."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _query(values: dict[str, str]) -> str:
    return "?" + urlencode({k: v for k, v in values.items() if v})


def _row(record: SessionRecord) -> dict[str, Any]:
    s = record.summary
    return {
        "id": s.session_id,
        "started_at": record.started_at.isoformat(),
        "duration_s": s.duration_s,
        "dominant": s.dominant_label,
        "alerts": len(s.alerts),
        "source": record.kind,
        "metadata": s.metadata,
        "windows": s.window_count,
        "end_reason": s.end_reason,
        "shares": s.shares,
        "mean_scores": s.mean_scores,
    }


def _with_silences(record: SessionRecord, hop_s: float) -> list[dict[str, Any]]:
    """Every result in time order, with the pauses between them (gaps over ``SILENCE_GAP_HOPS``
    hops: nothing was stored there) as rows of their own: what the chart and the table both show."""
    rows: list[dict[str, Any]] = []
    previous_end = None
    for r in sorted(record.summary.results, key=lambda r: (r.start_s, r.channel)):
        if previous_end is not None and r.start_s - previous_end > SILENCE_GAP_HOPS * hop_s:
            rows.append({"silence": True, "start_s": previous_end, "end_s": r.start_s})
        rows.append({"silence": False, "result": r})
        previous_end = r.end_s
    return rows


def _timeline(rows: list[dict[str, Any]], labels: list[str]) -> dict[str, Any]:
    """uPlot's columns: window mid-times, and each label's score, with a null where a pause was
    (so the line breaks there: a pause is drawn as a pause, not bridged)."""
    x: list[float] = []
    series: dict[str, list[float | None]] = {label: [] for label in labels}
    for row in rows:
        if row["silence"]:
            x.append((row["start_s"] + row["end_s"]) / 2)
            for label in labels:
                series[label].append(None)
            continue
        r = row["result"]
        x.append(round((r.start_s + r.end_s) / 2, 3))
        for label in labels:
            series[label].append(round(r.scores.get(label, 0.0), 4))
    return {"x": x, "series": series}


def _buckets(records: list[SessionRecord], since: date, until: date, by: str) -> list[dict[str, Any]]:
    """Per day (or ISO week): sessions, alerts, and the share of windows each emotion won."""

    def key(moment: date) -> date:
        return moment - timedelta(days=moment.weekday()) if by == "week" else moment

    grouped: dict[date, list[SessionRecord]] = defaultdict(list)
    for record in records:
        grouped[key(record.started_at.astimezone(UTC).date())].append(record)
    buckets = []
    day = key(since)
    while day <= until:
        chosen = grouped.get(day, [])
        wins: Counter[str] = Counter()
        for record in chosen:
            for result in record.summary.results:
                wins[result.label] += 1
        total = sum(wins.values())
        buckets.append(
            {
                "start": day.isoformat(),
                "sessions": len(chosen),
                "alerts": sum(len(r.summary.alerts) for r in chosen),
                "shares": {label: count / total for label, count in wins.items()} if total else {},
            }
        )
        day += timedelta(days=7 if by == "week" else 1)
    return buckets
