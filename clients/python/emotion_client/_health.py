"""The ``grpc.health.v1.Health/Check`` messages, built without grpcio-health-checking.

The client depends on grpcio and protobuf only, so the two tiny health messages
are declared here in a private descriptor pool (it cannot clash with a
``grpc_health`` package loaded in the same process).
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

CHECK_METHOD = "/grpc.health.v1.Health/Check"


def _messages() -> tuple[type[Message], type[Message]]:
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="emotion_client/health.proto", package="grpc.health.v1", syntax="proto3"
    )
    proto.message_type.add(name="HealthCheckRequest").field.add(
        name="service", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL
    )
    # The status enum travels as its number; HealthStatus names the values.
    proto.message_type.add(name="HealthCheckResponse").field.add(
        name="status", number=1, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return tuple(  # type: ignore[return-value]
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"grpc.health.v1.{name}"))
        for name in ("HealthCheckRequest", "HealthCheckResponse")
    )


HealthCheckRequest, HealthCheckResponse = _messages()
