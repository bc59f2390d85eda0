"""The HTTP/2 pieces the gRPC server and client share: reading a SETTINGS frame (RFC 9113 6.5, 6.5.2)."""

from __future__ import annotations

import pytest

from gateway.transport.h2 import (
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    PROTOCOL_ERROR,
    S_ENABLE_PUSH,
    S_INITIAL_WINDOW_SIZE,
    S_MAX_CONCURRENT_STREAMS,
    S_MAX_FRAME_SIZE,
    SETTING,
    ConnectionError_,
    read_settings,
)


def _payload(*pairs: tuple[int, int]) -> memoryview:
    return memoryview(b"".join(SETTING.pack(k, v) for k, v in pairs))


def test_settings_are_read_in_order_unknown_ones_included() -> None:
    pairs = [(S_MAX_CONCURRENT_STREAMS, 7), (S_INITIAL_WINDOW_SIZE, 1 << 20), (0x99, 5), (S_MAX_FRAME_SIZE, 1 << 20)]
    assert read_settings(_payload(*pairs)) == pairs
    assert read_settings(memoryview(b"")) == []


@pytest.mark.parametrize(("pair", "code"), [
    ((S_ENABLE_PUSH, 2), PROTOCOL_ERROR),
    ((S_INITIAL_WINDOW_SIZE, 2**31), FLOW_CONTROL_ERROR),
    ((S_MAX_FRAME_SIZE, 16383), PROTOCOL_ERROR),
    ((S_MAX_FRAME_SIZE, 2**24), PROTOCOL_ERROR),
])
def test_a_value_out_of_its_range_is_the_rfcs_connection_error(pair: tuple[int, int], code: int) -> None:
    with pytest.raises(ConnectionError_) as info:
        read_settings(_payload((S_MAX_CONCURRENT_STREAMS, 1), pair))
    assert info.value.code == code


def test_a_payload_not_a_multiple_of_6_is_frame_size_error() -> None:
    with pytest.raises(ConnectionError_) as info:
        read_settings(memoryview(bytes(7)))
    assert info.value.code == FRAME_SIZE_ERROR
