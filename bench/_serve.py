"""What the benches share: waiting for an `emotion serve` they started to report SERVING."""

from __future__ import annotations

import subprocess
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def wait_serving(port: int, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> bool:
    """True once the server on ``port`` is SERVING; False when it exits or ``timeout`` passes first."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    return False
