"""Container health probe: one grpc.health.v1 ``Check`` against the local server.

Exit status 0 when the server answers SERVING, 1 otherwise (NOT_SERVING while the
model loads or while it drains on SIGTERM, refused connection, timeout, bad TLS).
With ``--liveness`` any answer counts (SERVING or NOT_SERVING): the process is alive,
so a pod that is loading its model or draining is not restarted for it.

Used by the images' HEALTHCHECK and by the Kubernetes exec probes. Kubernetes'
native ``grpc:`` probes cannot speak TLS, so a server that terminates TLS itself
needs this script instead; a plaintext server can use either.

It reads the server's own settings (``EMOTION_*`` variables and the TOML file of
``$EMOTION_CONFIG``, exactly as ``emotion serve`` does), so it follows the port
and the TLS files without flags of its own. Extra variables, all optional:

``EMOTION_PROBE_SERVICE``      service to check (default ``emotion.v1.EmotionService``; ``""`` = whole server)
``EMOTION_PROBE_TIMEOUT_S``    deadline of the check (default 3)
``EMOTION_PROBE_CA_FILE``      CA that signed the server certificate (default: ``ca.crt`` beside
                               ``tls_cert_file`` when present, else ``tls_cert_file`` itself, which works
                               for self-signed certificates)
``EMOTION_PROBE_SERVER_NAME``  name to verify the certificate against (default ``localhost``; the server
                               certificate must carry it, or set this to one of its DNS names)
``EMOTION_PROBE_CERT_FILE``    client certificate when the server requires one (mTLS); default: the
``EMOTION_PROBE_KEY_FILE``     server's own certificate and key, which works when that certificate
                               may be used for client authentication
Health is open even when token auth is on, so no token is sent.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from emotion_service.server.config import ConfigError, Settings

WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")
# The probe's own variables (the server's settings are read as the server reads them).
PROBE_ENV = (
    "EMOTION_PROBE_SERVICE",
    "EMOTION_PROBE_TIMEOUT_S",
    "EMOTION_PROBE_CA_FILE",
    "EMOTION_PROBE_SERVER_NAME",
    "EMOTION_PROBE_CERT_FILE",
    "EMOTION_PROBE_KEY_FILE",
)
DEFAULT_SERVICE = "emotion.v1.EmotionService"


def _target(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in WILDCARD_HOSTS else settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{settings.port}"


def _credentials(settings: Settings, environ: Mapping[str, str]) -> grpc.ChannelCredentials:
    cert = Path(settings.tls_cert_file)
    ca = environ.get("EMOTION_PROBE_CA_FILE") or (
        str(cert.parent / "ca.crt") if (cert.parent / "ca.crt").is_file() else str(cert)
    )
    client_cert = client_key = None
    if settings.tls_client_ca_file:
        client_cert = Path(environ.get("EMOTION_PROBE_CERT_FILE") or settings.tls_cert_file).read_bytes()
        client_key = Path(environ.get("EMOTION_PROBE_KEY_FILE") or settings.tls_key_file).read_bytes()
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca).read_bytes(), private_key=client_key, certificate_chain=client_cert
    )


def check(environ: Mapping[str, str] | None = None, liveness: bool = False) -> tuple[bool, str]:
    """Runs one health check; returns (healthy, what happened)."""
    environ = os.environ if environ is None else environ
    try:
        settings = Settings.load(environ=environ)
    except ConfigError as exc:
        return False, f"settings: {exc}"
    service = environ.get("EMOTION_PROBE_SERVICE", DEFAULT_SERVICE)
    timeout = float(environ.get("EMOTION_PROBE_TIMEOUT_S") or 3)
    target = _target(settings)
    try:
        if settings.tls:
            name = environ.get("EMOTION_PROBE_SERVER_NAME") or "localhost"
            channel = grpc.secure_channel(
                target, _credentials(settings, environ), options=[("grpc.ssl_target_name_override", name)]
            )
        else:
            channel = grpc.insecure_channel(target)
    except OSError as exc:
        return False, f"cannot read a probe certificate: {exc}"
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            return False, f"{target}: {exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    answered = (health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING)
    healthy = reply.status in answered if liveness else reply.status == health_pb2.HealthCheckResponse.SERVING
    return healthy, f"{target} {service or '<server>'}: {status}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    unknown = [a for a in args if a != "--liveness"]
    if unknown:
        print(f"usage: healthcheck.py [--liveness]  (unknown: {' '.join(unknown)})", file=sys.stderr)
        return 2
    healthy, message = check(liveness="--liveness" in args)
    print(message, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
