"""The in-process server fixtures of test_grpc_server, for the other HTTP/2 server tests here."""

from tests.transport.test_grpc_server import loop_thread, serve  # noqa: F401
