"""The error family: every public exception on one branch (the caller's mistakes, which stay
``ValueError``s, or what a peer or the network did), the built-in classes existing ``except``
clauses catch kept, real calls raising the branch they should, and no raise in the package
outside the family."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

import p2p_transport
from p2p_demo.pong import PongGame
from p2p_transport import (
    Callbacks,
    ControlChannelClosed,
    ControlWindowFull,
    DecodeError,
    DesyncError,
    InvalidStateError,
    NotAGameError,
    P2PSession,
    P2PTransportError,
    RemoteError,
    RouteMode,
    ServerRefusedError,
    SessionConfig,
    TransportOptions,
    UsageError,
    VersionOneError,
    rollback,
)
from p2p_transport import errors as errors_module
from p2p_transport.protocol.control import ReliableControlChannel
from p2p_transport.protocol.v1_control import VersionOneControl
from p2p_transport.rollback import RollbackSession, SyncTestSession
from p2p_transport.wire.codec import decode
from p2p_transport.wire.messages import GAME_KIND_MAX, GAME_KIND_MIN
from tests.fakes import FakeChannel, FakeClock, FakeScheduler

PACKAGE = Path(p2p_transport.__file__).parent
BRANCHES = (UsageError, RemoteError)


def public_exceptions() -> set[type[BaseException]]:
    found = set()
    for module in (p2p_transport, errors_module, rollback):
        for name in module.__all__:
            if name == "BrowserTransport":
                continue  # imports ``js``
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, BaseException):
                found.add(value)
    return found


def test_the_package_root_exports_the_whole_family() -> None:
    exported = {getattr(p2p_transport, name) for name in errors_module.__all__}
    assert exported <= public_exceptions()
    assert {DecodeError, ControlWindowFull, ControlChannelClosed, VersionOneError} <= (
        public_exceptions()
    )
    assert {DesyncError, NotAGameError} <= public_exceptions()


@pytest.mark.parametrize("cls", sorted(public_exceptions(), key=lambda cls: cls.__name__))
def test_each_public_exception_is_on_exactly_one_branch(cls: type[BaseException]) -> None:
    assert issubclass(cls, P2PTransportError)
    if cls is P2PTransportError:
        return
    assert sum(issubclass(cls, branch) for branch in BRANCHES) == 1


def test_usage_errors_are_value_errors_and_keep_their_other_builtin() -> None:
    assert issubclass(UsageError, ValueError)
    assert not issubclass(RemoteError, ValueError)
    assert issubclass(InvalidStateError, RuntimeError)
    assert issubclass(ControlChannelClosed, InvalidStateError)
    assert issubclass(DesyncError, AssertionError)
    assert issubclass(NotAGameError, TypeError)
    # What a peer or the network did keeps the built-in class callers caught it by.
    assert issubclass(DecodeError, ValueError)
    assert issubclass(VersionOneError, ValueError)
    assert issubclass(ControlWindowFull, RuntimeError)
    assert issubclass(ServerRefusedError, RuntimeError)


def test_the_branches_are_what_each_class_says() -> None:
    for usage in (InvalidStateError, ControlChannelClosed, DesyncError, NotAGameError):
        assert issubclass(usage, UsageError)
    for remote in (DecodeError, ControlWindowFull, VersionOneError, ServerRefusedError):
        assert issubclass(remote, RemoteError)


# --- real calls ---------------------------------------------------------------------------------


def session(player_index: int = 0, peer_index: int = 1) -> P2PSession:
    clock = FakeClock()
    return P2PSession(
        player_index,
        peer_index,
        Callbacks(on_input=lambda frame, action: None),
        clock=clock,
        scheduler=FakeScheduler(clock),
        channel=FakeChannel(),
    )


def test_a_wrong_option_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="room must be a non-empty string"):
        TransportOptions(room="")
    with pytest.raises(UsageError, match="needs relay_inputs"):
        SessionConfig(route_mode=RouteMode.RELAY, relay_inputs=False)
    with pytest.raises(UsageError, match="player_index and peer_index must differ"):
        session(0, 0)


def test_a_wrong_argument_to_send_control_is_a_usage_error_and_nothing_is_sent() -> None:
    s = session()
    with pytest.raises(UsageError, match="game control kinds are"):
        s.send_control(GAME_KIND_MIN - 1)
    with pytest.raises(UsageError, match="game control kinds are"):
        s.send_control(GAME_KIND_MAX + 1)
    with pytest.raises(UsageError, match="kind must be an int"):
        s.send_control("chat")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="payload is at most"):
        s.send_control(GAME_KIND_MIN, bytes(100_000))
    assert s.stats()["control_sent"] == 0


def test_a_malformed_packet_is_a_remote_error_to_decode_and_counted_by_a_session() -> None:
    for garbage in (b"", b"\xff", b"\x01\x00"):
        with pytest.raises(DecodeError) as caught:
            decode(garbage)
        assert isinstance(caught.value, RemoteError)
        assert not isinstance(caught.value, UsageError)
    s = session()
    s.edge.on_open()
    s.edge.on_message(b"\xff")  # a peer's bad bytes never raise into the game loop
    assert s.stats()["p2p_decode_errors"] == 1


def test_a_full_control_window_is_a_remote_error() -> None:
    clock = FakeClock()
    channel = ReliableControlChannel(
        lambda packet: True,
        lambda kind, payload: None,
        clock=clock,
        scheduler=FakeScheduler(clock),
        window=1,
    )
    channel.send(GAME_KIND_MIN)
    with pytest.raises(ControlWindowFull) as caught:
        channel.send(GAME_KIND_MIN)  # the peer acknowledged nothing
    assert isinstance(caught.value, RemoteError)
    assert isinstance(caught.value, RuntimeError)


def test_a_send_on_a_closed_session_is_an_invalid_state_error() -> None:
    s = session()
    s.close()
    with pytest.raises(InvalidStateError, match="the control channel is closed") as caught:
        s.send_control(GAME_KIND_MIN)
    assert isinstance(caught.value, ControlChannelClosed)
    assert isinstance(caught.value, UsageError)
    assert isinstance(caught.value, RuntimeError)


def test_a_game_kind_for_a_version_one_peer_is_a_remote_error() -> None:
    sent: list[bytes] = []
    v1 = VersionOneControl(lambda packet: sent.append(packet) or True, lambda k, p: None, lambda: 0)
    with pytest.raises(RemoteError, match="no control messages of kind 128") as caught:
        v1.send(GAME_KIND_MIN, b"x")
    assert isinstance(caught.value, VersionOneError)
    assert isinstance(caught.value, ValueError)
    assert sent == []


class ForgetfulGame:
    """Counts its frames outside the state it saves: what a rollback cannot restore."""

    def __init__(self) -> None:
        self.total = 0
        self.advances = 0

    def save_state(self) -> object:
        return self.total

    def load_state(self, state: object) -> None:
        assert isinstance(state, int)
        self.total = state

    def advance(self, inputs: tuple[int, ...]) -> None:
        self.total += sum(inputs)
        self.advances += 1

    def checksum(self) -> bytes:
        return bytes([self.advances % 256, self.total % 256])


def test_a_game_that_is_not_deterministic_is_the_callers_mistake() -> None:
    sync = SyncTestSession(ForgetfulGame(), check_distance=2)
    sync.advance_frame((0, 0))
    with pytest.raises(UsageError) as caught:
        sync.advance_frame((0, 0))
    assert isinstance(caught.value, DesyncError)
    assert isinstance(caught.value, AssertionError)
    with pytest.raises(NotAGameError, match="is not a Game") as not_a_game:
        SyncTestSession(object())  # type: ignore[arg-type]
    assert isinstance(not_a_game.value, TypeError)
    assert isinstance(not_a_game.value, UsageError)


def test_a_call_at_the_wrong_time_is_an_invalid_state_error() -> None:
    rb = RollbackSession(PongGame(), session())
    with pytest.raises(InvalidStateError, match="episode 0 is not over yet") as caught:
        rb.start_next_episode()
    assert isinstance(caught.value, RuntimeError)
    with pytest.raises(UsageError, match="fps must be positive"):
        RollbackSession(PongGame(), session(), fps=0)


# --- the source -------------------------------------------------------------------------------

#: Built-in exceptions the package may still raise itself, and why.
OUTSIDE_THE_FAMILY = {
    # A module's __getattr__ answers a missing name as Python does.
    ("__init__.py", "AttributeError"),
    # An import-time check that two constants of the package agree: a build's bug, not a call's.
    ("wire/signaling.py", "ImportError"),
    # A saved state outside the ring: the rollback layer's own invariant, never a caller's.
    ("rollback/state_ring.py", "LookupError"),
}
BUILTIN_ERRORS = {name for name in dir(builtins) if name.endswith("Error")}


def test_the_package_raises_only_the_family() -> None:
    """Every built-in error the package constructs (``raise X(...)``, ``set_exception(X(...))``)
    is one of the few listed above: anything else is a family class."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in BUILTIN_ERRORS
            ):
                found.add((path.relative_to(PACKAGE).as_posix(), node.func.id))
    assert found <= OUTSIDE_THE_FAMILY
