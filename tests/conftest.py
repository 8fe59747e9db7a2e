"""Fixtures the CPython tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.test_server import Peer


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    """Raw Socket.IO clients a test makes (it appends them), closed at its end."""
    made: list[Peer] = []
    yield made
    for peer in made:
        peer.close()
