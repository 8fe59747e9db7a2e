"""What a sender keeps: the fast check takes exactly what the full check takes, and the wire
entries kept beside the inputs are the inputs' own encoding, bounded like them."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p_transport.protocol.recorded_inputs import RecordedInputs, check_input
from p2p_transport.wire.codec import MAX_ACTION, MAX_FRAME, pack_input_entry


class Action(IntEnum):
    LEFT = 3


# Around every bound, and the types a caller gets wrong.
values = (
    st.integers(-2, 300)
    | st.integers(MAX_FRAME - 2, MAX_FRAME + 2)
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1, max_value=10)
    | st.just(Action.LEFT)
    | st.none()
    | st.text(max_size=1)
)


def full_check(action: Any, frame: Any, last: int | None) -> str | None:
    try:
        check_input(frame, action, last)
    except ValueError as error:
        return str(error)
    return None


@given(st.lists(st.tuples(values, values), max_size=12))
def test_keep_takes_what_check_input_takes(calls: list[tuple[Any, Any]]) -> None:
    recorded = RecordedInputs(4)
    kept: list[tuple[int, int]] = []
    for action, frame in calls:
        last = kept[-1][0] if kept else None
        expected = full_check(action, frame, last)
        if expected is None:
            dropped = recorded.keep(frame, action)
            assert dropped == (kept[-4][0] if len(kept) >= 4 else None)
            kept.append((frame, action))
        else:
            with pytest.raises(ValueError) as raised:
                recorded.keep(frame, action)
            assert str(raised.value) == expected
    assert list(recorded.inputs) == kept[-4:]
    assert bytes(recorded.entries) == b"".join(pack_input_entry(f, a) for f, a in kept[-4:])


def test_entries_follow_the_bound_and_clear() -> None:
    recorded = RecordedInputs(3)
    for frame in range(10):
        recorded.keep(frame, frame % (MAX_ACTION + 1))
    assert len(recorded) == 3
    assert bytes(recorded.entries) == b"".join(pack_input_entry(f, f) for f in (7, 8, 9))
    recorded.clear()
    assert len(recorded) == 0 and recorded.entries == b""
    recorded.keep(0, 1)  # a new episode starts again from frame 0
    assert bytes(recorded.entries) == pack_input_entry(0, 1)
