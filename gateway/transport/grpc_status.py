"""The gRPC status codes (grpc/doc/statuscodes.md), one vocabulary for the server, the client, the
receivers' outcome table and the exporters' retry rules. An IntEnum: a member is the number on the wire."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16

    @classmethod
    def of(cls, code: int) -> Status:
        """The status a peer sent as `code`; a number the spec does not define is UNKNOWN, as gRPC reads it."""
        return cls(code) if 0 <= code <= 16 else cls.UNKNOWN
