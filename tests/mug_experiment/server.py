"""The deployed interactive_gym / mug server (``multi-user-gymnasium[server]``, pinned, in
``.venv-mug`` from ``scripts/setup.sh``) running ``experiment.py`` on a free 127.0.0.1 port, from a
scratch directory of its own: ``with MugServer("string") as mug: mug.url``."""

from __future__ import annotations

import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
MUG_PYTHON: Final = ROOT / ".venv-mug" / "bin" / "python"
EXPERIMENT: Final = Path(__file__).resolve().parent / "experiment.py"
#: The experiment's two id styles (see ``experiment.py``) and the ids each gives.
ID_STYLES: Final = {"string": ("agent_left", "agent_right"), "int": (0, 1)}
#: It starts in about a second here; a loaded machine gets ten times that.
STARTUP_TIMEOUT_S: Final = 30.0
#: What the server's log says when something went wrong (its loggers' levels, and Python's).
TROUBLE: Final = re.compile(r" - (WARNING|ERROR|CRITICAL) - |Traceback|Error:")
#: What this server logs at ERROR at the start of every game, whatever its clients do (its game
#: session goes from waiting to playing without the matched state its own rules require): the
#: lobby alone, with nothing else sent, shows it (``tests/test_mug_server.py``).
GAME_START_ERROR: Final = "Invalid session transition: SessionState.WAITING -> SessionState.PLAYING"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MugServer:
    """One mug server process for a test session; its log is :meth:`log`."""

    def __init__(self, id_style: str, turn: tuple[str, str] | None = None) -> None:
        if not MUG_PYTHON.exists():
            pytest.fail(f"{MUG_PYTHON} is missing: run scripts/setup.sh")
        self.id_style = id_style
        self.player_ids = ID_STYLES[id_style]
        #: The TURN username and credential the server sends players, if any.
        self.turn = turn
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="mug-server-")
        self._log_path = Path(self._dir.name) / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> MugServer:
        with self._log_path.open("wb") as log:
            # Eventlet announces its own deprecation on import: a warning about the server's
            # stack, not about what happens in it, so it is not let into the log.
            self._process = subprocess.Popen(
                [
                    str(MUG_PYTHON),
                    "-W",
                    "ignore::DeprecationWarning",
                    str(EXPERIMENT),
                    str(self.port),
                    self.id_style,
                    *(self.turn or ()),
                ],
                cwd=self._dir.name,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"the mug server exited:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the mug server did not start:\n{self.log()}") from None
                time.sleep(0.05)

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._dir.cleanup()

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")

    def trouble(self, since: int = 0) -> list[str]:
        """The log's warnings and errors, from character ``since`` on, but the one the server
        logs for every game (:data:`GAME_START_ERROR`)."""
        return [
            line
            for line in self.log()[since:].splitlines()
            if TROUBLE.search(line) and GAME_START_ERROR not in line
        ]
