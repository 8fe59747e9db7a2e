"""The error family: every public exception on one branch (the caller's mistakes, which stay
``ValueError``s, or what a peer or the network did), and the built-in classes existing
``except`` clauses catch kept."""

from __future__ import annotations

import pytest

import p2p_transport
from p2p_transport import (
    ControlChannelClosed,
    ControlWindowFull,
    DecodeError,
    DesyncError,
    InvalidStateError,
    NotAGameError,
    P2PTransportError,
    RemoteError,
    ServerRefusedError,
    UsageError,
    VersionOneError,
    rollback,
)
from p2p_transport import errors as errors_module

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
