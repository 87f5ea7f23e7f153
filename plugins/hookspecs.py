"""Hook specifications of the ``emotion`` plugin system.

Every feature that is not the core request path is a plugin implementing these
hooks, the built-in ones included. A plugin is a module or object with
functions marked ``@hookimpl`` whose names match the specs below; arguments
may be omitted from an implementation's signature (pluggy passes only those it
asks for).

Ordering: :func:`plugins.manager.load_plugins` registers the built-in plugins
first (by name), then third-party ones (by distribution, then name). pluggy
calls the last registered first, so a third-party implementation runs before
the built-ins; ``@hookimpl(tryfirst=True)`` / ``(trylast=True)`` move one to the
front or the back. The built-in ``audio_cleanup`` is ``tryfirst``, so every
other ``preprocess`` sees trimmed, normalised audio. ``emotion plugins`` prints
the resulting order.

No hook is ``firstresult``: every implementation runs. Chaining and failures, per hook:

==================  =================================  ============================================
hook                results                            an implementation that raises
==================  =================================  ============================================
``preprocess``      chained (output feeds the next)    fails the request with INTERNAL naming it
``augment``         chained                            fails the training step, naming it
``on_result``       alerts of all concatenated         is logged (``plugin_failed``) and skipped
``on_alert``        ignored                            is logged and skipped
``on_session_end``  written locations concatenated     is logged and skipped
``on_shutdown``     ignored                            is logged and skipped
``on_erase``        erased places concatenated         fails the erasure with INTERNAL naming it
``on_model_loaded`` ignored                            is logged and skipped
==================  =================================  ============================================

Hooks are called from worker threads, several at once for concurrent
requests: a plugin that keeps state guards it. Hook wrappers are not supported.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pluggy

from emotion_service.plugins.types import Alert, JobSummary, Result, SessionSummary

hookspec = pluggy.HookspecMarker("emotion")
hookimpl = pluggy.HookimplMarker("emotion")


@hookspec
def preprocess(waveform: np.ndarray, sample_rate: int, context: dict[str, Any]) -> np.ndarray | None:
    """Transform audio before the model sees it, at serve time and at train time.

    Chained: each implementation receives the previous one's output, in hook
    order. Returning ``None`` passes the audio on unchanged.

    :param waveform: mono float32 samples at ``sample_rate``.
    :param sample_rate: the model's sample rate (samples per second).
    :param context: ``{"stage": "serve" | "train", ...}`` plus ``"request_id"`` (a Classify call)
        or ``"session_id"`` (a stream window); read-only by convention.
    :return: the new waveform (mono float32, same rate), or ``None``.

    A raising implementation fails the request with INTERNAL, naming the plugin.

    Example::

        @hookimpl
        def preprocess(waveform):
            return waveform * 0.5
    """


@hookspec
def augment(waveform: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray | None:
    """Perturb a training clip (never called at serve time).

    Chained like :func:`preprocess`.

    :param waveform: mono float32 samples at ``sample_rate``.
    :param sample_rate: samples per second.
    :param rng: the only source of randomness to use, seeded per epoch and clip so
        that runs are reproducible.
    :return: the augmented waveform, or ``None`` to leave it unchanged.

    Example::

        @hookimpl
        def augment(waveform, rng):
            return waveform * rng.uniform(0.5, 1.5)
    """


@hookspec
def on_result(result: Result) -> list[Alert] | None:
    """See each ``Classify`` answer, each stream window and each job utterance as it is produced.

    Every implementation is called; the alerts they return are concatenated,
    sent back to the caller (in the stream, or in ``ClassifyResponse.alerts``)
    and passed to :func:`on_alert`.

    A result the speech detector heard no speech in comes too, with ``result.no_speech`` True,
    an empty ``label`` and empty ``scores`` (the model was not asked): sinks record it, alert
    logic skips it. Alerts returned for such a result are dropped (logged as
    ``no_speech_alerts_dropped``): no speech, no emotion, no alert.

    :param result: the label, all scores, ``no_speech`` and ``voiced_fraction``, the time span and
        the session's metadata.
    :return: alerts to raise, or ``None``.

    A raising implementation is logged with its name and skipped: the answer
    is still delivered.

    Example::

        @hookimpl
        def on_result(result):
            if not result.no_speech and result.scores.get("ANG", 0) > 0.9:
                return [Alert(kind="threshold", label="ANG", message="very angry", value=result.scores["ANG"])]
    """


@hookspec
def on_alert(alert: Alert, session_id: str) -> None:
    """Deliver an alert somewhere (a log, a webhook, a pager).

    Every implementation is called; return values are ignored. A raising
    implementation is logged with its name and skipped.

    :param alert: the alert raised by an :func:`on_result` implementation.
    :param session_id: the stream's session id, or the Classify request id.
    """


@hookspec
def on_session_end(summary: SessionSummary) -> list[str] | None:
    """Called once when a stream ends normally.

    Every implementation is called; the returned strings (e.g. paths or URLs
    of written reports) are logged.

    :param summary: the session's windows (those without speech included, marked ``no_speech``),
        alerts, shares and dominant label (over the windows with speech) and metadata.
    :return: locations of anything written, or ``None``.

    A raising implementation is logged with its name and skipped.
    """


@hookspec
def on_model_loaded(model_name: str, model_folder: str, labels: list[str]) -> None:
    """The server loaded its model and is about to serve it: adapt to that model.

    Called once per server, after the model loaded and before the first request is scored (health
    turns SERVING after every implementation returned), from a worker thread. The built-in
    ``anomaly`` plugin reads its alert levels from the model folder's ``alert_calibration.json``
    here (what ``make calibrate-alerts`` chose for that model), so each bundled model is served with
    its own calibration; settings given in the config file or the environment still win.

    :param model_name: the name the service reports (``GetModelInfo``; a folder's name or a hub id).
    :param model_folder: the model's folder on disk, or ``""`` for a hub id served from the cache.
    :param labels: the model's labels, in score order.

    A raising implementation is logged with its name and skipped.

    Example::

        @hookimpl
        def on_model_loaded(model_name, model_folder, labels):
            thresholds.update(json.loads(Path(model_folder, "my_plugin.json").read_text()))
    """


@hookspec
def on_shutdown() -> None:
    """The server has stopped taking calls: flush what is queued and close connections.

    Called once, after the last request was answered and every ``on_session_end`` ran, from a
    worker thread; the process exits soon after. Sinks that work on their own threads
    (:class:`~emotion_service.plugins.workers.SinkWorker`) close them here, so that nothing
    queued is lost (the ``store`` writes its queue to the database, or to its spool).

    Example::

        @hookimpl
        def on_shutdown():
            connection.close()
    """


@hookspec
def on_erase(session_id: str, requested_by: str) -> list[str] | None:
    """Remove everything this plugin wrote about a session: a person's right to erasure.

    Called by the administrative ``DeleteSession`` call and by ``emotion erase --session``.
    Every plugin that keeps anything per session (rows, files, caches, copies elsewhere)
    implements it; the erasure is only reported done when every implementation returned.

    :param session_id: the session to erase.
    :param requested_by: who asked (the API key's name, or ``cli:<user>``), for the record.
    :return: one line per place something was removed from (``"reports: 2 files"``), or ``None``
        when the plugin held nothing of the session.

    A raising implementation fails the erasure with INTERNAL, naming the plugin: an erasure
    that may be incomplete is never reported as done.

    Example::

        @hookimpl
        def on_erase(session_id, requested_by):
            removed = cache.pop(session_id, None)
            return ["my_cache: 1 entry"] if removed else None
    """


@hookspec
def on_job_end(job: JobSummary) -> None:
    """Called once when a job ends (succeeded or failed) on the replica that ran it.

    Runs after the job's ``on_result`` and ``on_session_end`` calls, from a worker thread; the
    built-in ``webhook`` plugin posts it to its URL (a completion callback).

    :param job: the job's id, session id, state, recording names, audio length, its
        utterances (``Result`` of kind ``"utterance"``, with their ``channel``) and, when it
        failed, why.

    A raising implementation is logged with its name and skipped.

    Example::

        @hookimpl
        def on_job_end(job):
            if job.state == "succeeded":
                notify(job.session_id, len(job.utterances))
    """
