"""The web UI in a process of its own, started, watched and stopped by the server.

Rendering a page, querying the results store for it and building an export are Python work: in the
server's process they would hold its interpreter lock and stall gRPC calls. So ``emotion serve
--http-port`` spawns a child process (multiprocessing, ``spawn``: a fresh interpreter that never
imports the model) that runs :class:`~emotion_service.server.web.WebUI` on uvicorn, at a lower
scheduling priority (``UI_NICENESS``) so that the API keeps the CPU when both want it.

- **The port** is bound by the server (so a taken port fails ``emotion serve`` at once, naming the
  port and the flag) and handed to the child; the server keeps it across the child's restarts, so
  no other process can take it and browsers wait in its backlog rather than being refused.
- **The results store and the job queue** are read by the child directly (its own connections).
- **What the API owns** the child asks for over a private gRPC bridge (:class:`Bridge`): a Unix
  socket in a folder only this user can open, every call carrying a per-server secret. It carries
  the model's labels, job submissions from ``/analyze`` (through the servicer's ``submit_job``:
  the same decoding, limits, ownership and erasure checks as ``SubmitJob``) and the live events:
  one stream per child, a snapshot of the running streams then every event, which the child fans
  out to its browsers (``/live``, ``/events``, a running session's page) through a mirror
  :class:`~emotion_service.server.live.LiveHub`. With PostgreSQL the server's hub also holds other
  replicas' events (its relay), so the child shows them too.
- **Logins** work as before: the child gets the server's settings and keys, and one session key per
  server (``web_session_secret_file``, else random), so a restarted child keeps people logged in.
- **Lifecycle.** The child comes up while the model loads (``web_ui_started`` once it serves;
  browsers that come sooner wait in the port's backlog). A child that dies, does not serve within
  ``START_S``, or whose web loop stops ticking for ``HANG_S`` (stopped, deadlocked: ``web_ui_hung``,
  then killed), is logged (``web_ui_exited``) and restarted, at most ``MAX_RESTARTS`` times in a row
  (one that ran for ``STABLE_S`` starts the count afresh); past that the UI is given up
  (``web_ui_failed``, its port closed so browsers are refused rather than left waiting) and the API
  goes on serving: a broken page must not take the service its clients call down with it.
  Stopping the server stops the child (SIGTERM, then SIGKILL after ``STOP_S``); a server killed
  outright takes the child with it (the child watches its parent).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import grpc
import structlog

from emotion_client.v1 import emotion_pb2 as pb
from emotion_service.server.auth import ApiKey
from emotion_service.server.config import Settings
from emotion_service.server.job_queue import JobQueue
from emotion_service.server.live import LiveHub
from emotion_service.server.rpc import JobRequestError
from emotion_service.server.web import WebUI, _session_key

if TYPE_CHECKING:
    from emotion_service.server.service import EmotionServicer

log = structlog.get_logger(__name__)

# Below the server's priority: when both want the CPU, the API gets it (nice 10 weighs about a tenth
# of nice 0 in Linux's scheduler); an idle machine gives the UI all it asks.
UI_NICENESS = 10
# How long the server waits for a (re)started UI process to serve (a cold start imports Starlette,
# SQLAlchemy and gRPC: a few seconds on a busy machine).
START_S = 120.0
# A UI process that dies is restarted, at most this many times in a row; one that served this
# long before it died starts the count afresh.
MAX_RESTARTS = 5
STABLE_S = 60.0
RESTART_DELAY_S = 0.5
# A stopping UI process gets this long (its open event streams get 2 s of it) before SIGKILL.
STOP_S = 10.0
WATCH_S = 0.2
# A UI process whose web loop has not ticked for this long is hung (stopped, deadlocked, stuck in
# a page): it is killed and restarted like one that died. uvicorn ticks ten times a second; a page
# is rendered on that loop, and at the UI's low priority on a saturated machine a heavy one can
# hold it for tens of seconds, which must not count as hung.
HANG_S = 120.0
# The bridge: its service name, the metadata key of the secret, how soon the child reconnects.
BRIDGE_SERVICE = "emotion.internal.WebBridge"
SECRET_KEY = "emotion-bridge-secret"
RECONNECT_S = 0.5
# How often the UI's process asks the server whether it can diarize (a wheel lost or installed shows on
# the upload form within this long); the form never waits on the server for it.
DIARIZE_CHECK_S = 5.0
SNAPSHOT = "snapshot"  # the bridge's first live message: the streams running now
# Headroom over the job limit for the rest of a submission (the form's fields, the framing).
MESSAGE_OVERHEAD_BYTES = 64 * 1024


class WebUIError(RuntimeError):
    """The web UI's process could not be started."""


@dataclass(frozen=True)
class ChildSpec:
    """What the UI's process is handed (pickled): the settings, keys and where things are."""

    settings: Settings
    keys: list[ApiKey] | None
    store_url: str
    jobs_url: str
    bridge: str  # the bridge's gRPC target (unix:PATH)
    secret: str
    session_key: bytes


# --- the server's side -------------------------------------------------------------------------


class WebUIProcess:
    """The web UI of one replica, in a child process; ``port`` once started, ``pid`` while it runs."""

    def __init__(
        self, settings: Settings, servicer: EmotionServicer, store_url: str, jobs_url: str, keys: list[ApiKey] | None
    ) -> None:
        self.settings = settings
        self.servicer = servicer
        self._store_url = store_url
        self._jobs_url = jobs_url
        self._keys = keys
        self._secret = secrets.token_urlsafe(32)
        self._session_key = _session_key(settings.web_session_secret_file)
        self._socket: socket.socket | None = None
        self._folder: str | None = None
        self._bridge: grpc.aio.Server | None = None
        self._process: BaseProcess | None = None
        self._ready: Connection | None = None
        self._heartbeat: Any = None
        self._port = 0
        self._started_at = 0.0
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False
        self.failed = asyncio.Event()
        self.failure = ""

    @property
    def port(self) -> int:
        return self._port

    @property
    def pid(self) -> int | None:
        """The UI process's id while it runs."""
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    async def start(self) -> None:
        """Binds the port (:class:`OSError` naming it and the flag when taken), opens the bridge and
        starts the UI's process; it comes up while the model loads (browsers wait in the backlog)."""
        self._socket = _listen(self.settings)
        self._port = self._socket.getsockname()[1]
        try:
            self._folder = tempfile.mkdtemp(prefix="emotion-web-")  # mode 0700: this user only
            target = f"unix:{Path(self._folder) / 'bridge.sock'}"
            limit = self.settings.max_job_bytes + MESSAGE_OVERHEAD_BYTES
            self._bridge = grpc.aio.server(
                options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
            )
            self._bridge.add_generic_rpc_handlers((Bridge(self.servicer, self._secret).handler(),))
            self._bridge.add_insecure_port(target)
            await self._bridge.start()
            self._spec = ChildSpec(
                self.settings, self._keys, self._store_url, self._jobs_url, target, self._secret, self._session_key
            )
            self._spawn()
        except BaseException:
            await self.stop()
            raise
        self._watcher = asyncio.create_task(self._watch(), name="web-ui-watch")

    def _spawn(self) -> None:
        """Starts a UI process on the bound port (it says on ``_ready`` once it serves)."""
        context = multiprocessing.get_context("spawn")
        self._ready, theirs = context.Pipe(duplex=False)
        # The child's heartbeat: the monotonic time (system-wide) of its web loop's last tick.
        self._heartbeat = context.Value("d", time.monotonic(), lock=False)
        process = context.Process(
            target=run_child,
            args=(self._spec, self._socket, theirs, self._heartbeat),
            name="emotion-web-ui",
            daemon=True,
        )
        self._process, self._started_at = process, time.monotonic()
        process.start()
        theirs.close()

    async def _served(self, process: BaseProcess) -> None:
        """Returns once ``process`` serves; raises :class:`WebUIError` when it dies first or takes over ``START_S``."""
        ready = self._ready
        assert ready is not None
        try:
            deadline = time.monotonic() + START_S
            while not ready.poll():
                if not process.is_alive():
                    raise WebUIError(f"it exited before it served (exit code {process.exitcode})")
                if time.monotonic() > deadline:
                    process.kill()
                    raise WebUIError(f"it did not serve within {START_S:.0f} s")
                await asyncio.sleep(0.05)
            try:
                ready.recv()
            except EOFError:  # it closed its end without a word: it died
                await asyncio.to_thread(process.join, 5)
                raise WebUIError(f"it exited before it served (exit code {process.exitcode})") from None
        finally:
            ready.close()

    async def _watch(self) -> None:
        """Waits for each UI process to serve, and restarts one that died (``MAX_RESTARTS`` times in a
        row at most; past that ``failed`` is set)."""
        failures = 0
        scheme = "https" if self.settings.tls else "http"
        while True:
            process = self._process
            assert process is not None
            try:
                await self._served(process)
                self._heartbeat.value = time.monotonic()  # a slow start is not silence
                log.info("web_ui_started", url=f"{scheme}://{self.settings.host}:{self.port}/", pid=process.pid)
                reason = await self._while_alive(process)
            except WebUIError as exc:
                reason = str(exc)
            if self._stopping:
                return
            failures = failures + 1 if time.monotonic() - self._started_at < STABLE_S else 1
            log.error("web_ui_exited", reason=reason, pid=process.pid, restarts_left=max(0, MAX_RESTARTS - failures + 1))
            if failures > MAX_RESTARTS:
                self.failure = f"the web UI's process ended {failures} times in a row (last: {reason}): see the log above"
                log.error("web_ui_failed", reason=self.failure, api="still serving", http_port=self.port)
                if self._socket is not None:
                    self._socket.close()  # nothing will accept there: refuse browsers instead of holding them
                self.failed.set()
                return
            await asyncio.sleep(RESTART_DELAY_S * 2 ** (failures - 1))
            if self._stopping:
                return
            self._spawn()

    async def _while_alive(self, process: BaseProcess) -> str:
        """Waits while ``process`` runs and its web loop ticks; kills it when the ticks stop for
        ``HANG_S`` (a stopped or deadlocked UI would hold its browsers forever). Says why it ended."""
        while process.is_alive():
            silent_s = time.monotonic() - self._heartbeat.value
            if silent_s > HANG_S and not self._stopping:
                log.error("web_ui_hung", pid=process.pid, silent_s=round(silent_s, 1))
                process.kill()
                await asyncio.to_thread(process.join, 5)
                return f"it stopped answering for {silent_s:.0f} s and was killed"
            await asyncio.sleep(WATCH_S)
        return f"exit code {process.exitcode}"

    async def stop(self) -> None:
        """Stops the UI's process (SIGTERM, then SIGKILL after ``STOP_S``), then the bridge and the port."""
        self._stopping = True
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        process = self._process
        if process is not None and process.is_alive():
            process.terminate()
            await asyncio.to_thread(process.join, STOP_S)
            if process.is_alive():
                log.warning("web_ui_killed", pid=process.pid)
                process.kill()
                await asyncio.to_thread(process.join, 5)
        if self._socket is not None:
            self._socket.close()
        if self._bridge is not None:
            await self._bridge.stop(0)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


def _listen(settings: Settings) -> socket.socket:
    """The UI's listening socket on ``host:http_port``; :class:`OSError` naming both when it cannot."""
    host, port = settings.host, settings.http_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise OSError(
            f"the web UI cannot listen on {host}:{port} (the port is taken or not allowed): "
            "choose another --http-port (EMOTION_HTTP_PORT)"
        ) from None
    return sock


class Bridge:
    """The bridge's calls, served in the server's process on its gRPC loop: JSON in and out."""

    def __init__(self, servicer: EmotionServicer, secret: str) -> None:
        self.servicer = servicer
        self._secret = secret

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            BRIDGE_SERVICE,
            {
                "Labels": grpc.unary_unary_rpc_method_handler(self.labels),
                "CannotDiarize": grpc.unary_unary_rpc_method_handler(self.cannot_diarize),
                "Live": grpc.unary_stream_rpc_method_handler(self.live),
                "SubmitJob": grpc.unary_unary_rpc_method_handler(self.submit_job),
            },
        )

    async def _check(self, context: grpc.aio.ServicerContext) -> dict[str, str]:
        metadata = {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
        if not hmac.compare_digest(metadata.get(SECRET_KEY, ""), self._secret):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not the web UI's process")
        return metadata

    async def labels(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """The model's labels (none while it loads)."""
        await self._check(context)
        state = self.servicer.state
        return json.dumps({"labels": list(state.backend.info.labels) if state is not None else []}).encode()

    async def cannot_diarize(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """Why the server would refuse a diarized job ("" when it can diarize)."""
        await self._check(context)
        return json.dumps({"reason": await self.servicer.cannot_diarize()}).encode()

    async def live(self, request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        """The streams running now, then every live event; a fresh snapshot when the UI fell behind
        (its queue is bounded as a browser's is: a slow UI loses events, never slows a stream)."""
        await self._check(context)
        hub = self.servicer.live
        subscriber = hub.subscribe()
        try:
            yield _snapshot(hub)
            dropped = 0
            while True:
                event = await subscriber.queue.get()
                if subscriber.dropped != dropped:
                    dropped = subscriber.dropped
                    yield _snapshot(hub)
                yield json.dumps(event, default=str).encode()
        finally:
            hub.unsubscribe(subscriber)

    async def submit_job(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """An upload of ``/analyze`` queued as a job by the servicer (its refusal as ``error``)."""
        job = json.loads((await self._check(context)).get("job", "{}"))
        message = pb.SubmitJobRequest.FromString(request)
        try:
            row = await self.servicer.submit_job(
                list(message.recordings),
                job.get("channels", "mix"),
                {str(k): str(v) for k, v in job.get("metadata", {}).items()},
                owner=job.get("owner", ""),
                may_join_any_session=bool(job.get("may_join_any_session", True)),
                diarize=message.diarize,
                num_speakers=message.num_speakers,
            )
        except JobRequestError as exc:
            return json.dumps({"error": str(exc), "code": exc.code.name}).encode()
        return json.dumps({"id": row.id, "session_id": row.session_id, "state": row.state}).encode()


def _snapshot(hub: LiveHub) -> bytes:
    return json.dumps({"type": SNAPSHOT, "running": hub.running}, default=str).encode()


# --- the UI's side -------------------------------------------------------------------------------


class ApiBridge:
    """What the web UI needs of the API, in the UI's process, under the servicer's names: ``jobs``
    (the job queue, read directly), ``live`` (a mirror of the server's live hub), ``state`` (the
    model's labels, once known), and ``cannot_diarize`` and ``submit_job`` (over the bridge)."""

    def __init__(self, spec: ChildSpec) -> None:
        self.jobs = JobQueue(spec.jobs_url)
        self.live = LiveHub()
        self.state: Any = None
        self._cannot_diarize = ""  # the server's last answer: "" (can, or not yet asked) or why not
        self._target = spec.bridge
        self._metadata = ((SECRET_KEY, spec.secret),)
        self._limit = spec.settings.max_job_bytes + MESSAGE_OVERHEAD_BYTES
        self._channel: grpc.aio.Channel | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        options = [("grpc.max_send_message_length", self._limit), ("grpc.max_receive_message_length", self._limit)]
        self._channel = grpc.aio.insecure_channel(self._target, options=options)
        self._tasks = [
            asyncio.create_task(self._follow_live(), name="bridge-live"),
            asyncio.create_task(self._learn_labels(), name="bridge-labels"),
            asyncio.create_task(self._follow_diarization(), name="bridge-diarize"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()
        await asyncio.to_thread(self.jobs.close)

    def _call(self, name: str) -> Any:
        assert self._channel is not None
        return self._channel.unary_unary(f"/{BRIDGE_SERVICE}/{name}")

    async def _learn_labels(self) -> None:
        """The model's labels, asked until the model has loaded."""
        while self.state is None:
            with contextlib.suppress(grpc.aio.AioRpcError):
                labels = json.loads(await self._call("Labels")(b"", metadata=self._metadata, timeout=10))["labels"]
                if labels:
                    # The shape the UI reads of the servicer's model state: state.backend.info.labels.
                    info = SimpleNamespace(labels=tuple(labels))
                    self.state = SimpleNamespace(backend=SimpleNamespace(info=info))
                    return
            await asyncio.sleep(RECONNECT_S)

    async def _follow_live(self) -> None:
        """Mirrors the server's live hub: its snapshot, then each event handed to this process's browsers."""
        assert self._channel is not None
        live = self._channel.unary_stream(f"/{BRIDGE_SERVICE}/Live")
        while True:
            try:
                async for message in live(b"", metadata=self._metadata):
                    event = json.loads(message)
                    if event.get("type") == SNAPSHOT:
                        self.live.running.clear()
                        self.live.running.update(event["running"])
                    else:
                        self.live.deliver(event)
            except grpc.aio.AioRpcError as exc:  # the server is stopping (or restarting): follow it again
                log.debug("web_ui_bridge_lost", code=exc.code().name)
            except (ValueError, KeyError) as exc:
                log.warning("web_ui_bridge_unreadable", reason=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(RECONNECT_S)

    async def cannot_diarize(self) -> str:
        """The servicer's ``cannot_diarize`` as the server last answered it (asked every
        :data:`DIARIZE_CHECK_S` in the background, so a page never waits on a busy server); "" until
        it has answered (the form then offers diarization, and a refused job says why)."""
        return self._cannot_diarize

    async def _follow_diarization(self) -> None:
        while True:
            try:
                answer = await self._call("CannotDiarize")(b"", metadata=self._metadata, timeout=10)
                self._cannot_diarize = str(json.loads(answer)["reason"])
            except grpc.aio.AioRpcError as exc:  # the server is stopping or busy: keep its last answer
                log.debug("web_ui_bridge_lost", code=exc.code().name)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("web_ui_bridge_unreadable", reason=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(DIARIZE_CHECK_S)

    async def submit_job(
        self,
        recordings: list[pb.Recording],
        channels: str,
        metadata: dict[str, str],
        owner: str = "",
        may_join_any_session: bool = True,
        diarize: bool = False,
        num_speakers: int = 0,
    ) -> Any:
        """The servicer's ``submit_job``, in the server's process; raises :class:`JobRequestError` as it does."""
        job = {"channels": channels, "metadata": metadata, "owner": owner, "may_join_any_session": may_join_any_session}
        # Diarization travels in the request message, as in SubmitJob.
        request = pb.SubmitJobRequest(
            recordings=recordings, diarize=diarize, num_speakers=num_speakers
        ).SerializeToString()
        try:
            answer = json.loads(
                await self._call("SubmitJob")(request, metadata=(*self._metadata, ("job", json.dumps(job))), timeout=300)
            )
        except grpc.aio.AioRpcError as exc:
            raise JobRequestError(
                grpc.StatusCode.UNAVAILABLE, f"the server did not take the job ({exc.code().name}): retry"
            ) from None
        if "error" in answer:
            raise JobRequestError(grpc.StatusCode[answer["code"]], answer["error"])
        return SimpleNamespace(**answer)


def run_child(spec: ChildSpec, sock: socket.socket, ready: Connection, heartbeat: Any) -> None:
    """The UI process's main: serves until SIGTERM, or until the server's process is gone."""
    from emotion_service.logging import configure_logging

    # Ctrl-C reaches the whole process group: the server stops this process itself, after its drain.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(UI_NICENESS)
    configure_logging(spec.settings.log_level, spec.settings.log_format)
    asyncio.run(_serve_child(spec, sock, ready, heartbeat))


async def _serve_child(spec: ChildSpec, sock: socket.socket, ready: Connection, heartbeat: Any) -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    parent = multiprocessing.parent_process()
    if parent is not None:  # its sentinel turns readable when the server's process is gone
        sentinel = parent.sentinel

        def parent_gone() -> None:
            loop.remove_reader(sentinel)  # it stays readable: once is enough
            log.warning("web_ui_server_gone")
            done.set()

        loop.add_reader(sentinel, parent_gone)
    bridge = ApiBridge(spec)
    await bridge.start()
    ui = WebUI(spec.settings, bridge, spec.store_url, spec.keys, session_key=spec.session_key)  # type: ignore[arg-type]
    try:
        await ui.start(sock, beat=lambda: setattr(heartbeat, "value", time.monotonic()))
        ready.send(os.getpid())
        ready.close()
        await done.wait()
    finally:
        await ui.stop()
        await bridge.close()
