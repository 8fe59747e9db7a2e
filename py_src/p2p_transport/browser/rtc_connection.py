"""One RTCPeerConnection with its two DataChannels, as the browser holds them.

:class:`RtcConnection` is opened and closed as the peer-connection machine decides (through
:class:`~p2p_transport.browser.pairing.Pairing`), carries out its signaling steps, and reports
what the connection and its channels do. The game channel's messages go straight from the
browser's event into the session, with no asyncio hop; only the one-off signaling steps (offer,
answer, candidates) await promises.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final

import js
from pyodide.ffi import jsnull

from p2p_transport.browser.adapters import (
    JsDataChannel,
    ProxyRegistry,
    WorkerChannel,
    js_object,
    payload_bytes,
)
from p2p_transport.browser.options import TransportOptions
from p2p_transport.browser.pairing import EdgeAction, Pairing
from p2p_transport.protocol.peer_connection import (
    AcceptOffer,
    AddCandidate,
    ApplyAnswer,
    CloseConnection,
    OpenConnection,
)

__all__ = [
    "CHANNEL_LABEL",
    "PING_CHANNEL_ID",
    "PING_CHANNEL_LABEL",
    "RtcConnection",
    "RtcLink",
    "SignalingSteps",
]

logger = logging.getLogger(__name__)

#: The label and options deployed peers use: unordered and without retransmits, because a late
#: input is worth less than the next packet, which carries it again.
CHANNEL_LABEL: Final = "game"
#: The RTT channel: negotiated by both sides with a fixed id, far above the ids the browser
#: assigns to announced channels (0, 1, 2, ...), so the two can never collide.
PING_CHANNEL_LABEL: Final = "ping"
PING_CHANNEL_ID: Final = 1000

#: Runs a signaling step (a coroutine) to its end; ``what`` names it if it throws.
Spawn = Callable[[Coroutine[Any, Any, None], str], None]


class RtcConnection:
    """Connection ``connection`` of the machine's: an RTCPeerConnection, the game channel (made
    here by the offerer, announced by the peer otherwise) and the worker-held ping channel.

    Its handlers are made with ``proxies``, which the transport frees when the connection closes.
    """

    def __init__(
        self,
        connection: int,
        offerer: bool,
        configuration: dict[str, Any],
        pairing: Pairing,
        proxies: ProxyRegistry,
        spawn: Spawn,
    ) -> None:
        self.connection = connection
        self._pairing = pairing
        self._proxies = proxies
        self._spawn = spawn
        self._shim = js.p2pShim
        #: The game channel, once there is one.
        self.channel: JsDataChannel | None = None
        self._ping_channel: WorkerChannel | None = None
        pc = self.raw = js.RTCPeerConnection.new(js_object(configuration))
        create = proxies.create
        pc.onicecandidate = create(self._on_ice_candidate)
        pc.onconnectionstatechange = create(self._on_connection_state)
        pc.onicecandidateerror = create(self._on_ice_candidate_error)
        self._open_ping_channel()
        if offerer:
            options = js_object({"ordered": False, "maxRetransmits": 0})
            self._attach_channel(pc.createDataChannel(CHANNEL_LABEL, options))
            spawn(self._make_offer(), "creating the offer")
        else:
            pc.ondatachannel = create(lambda event: self._attach_channel(event.channel))

    # --- the signaling steps ------------------------------------------------------------------

    def _current(self) -> bool:
        return self.connection == self._pairing.connection

    async def _make_offer(self) -> None:
        pc = self.raw
        offer = await pc.createOffer()
        if not self._current():
            return  # replaced meanwhile by a newer connection
        await pc.setLocalDescription(offer)
        self._pairing.description_ready(self.connection, "offer", str(pc.localDescription.sdp))

    def accept_offer(self, sdp: str) -> None:
        self._spawn(self._accept_offer(sdp), "answering the offer")

    async def _accept_offer(self, sdp: str) -> None:
        pc = self.raw
        await pc.setRemoteDescription(js_object({"type": "offer", "sdp": sdp}))
        if not self._current():
            return
        self._pairing.remote_description_set(self.connection)
        answer = await pc.createAnswer()
        if not self._current():
            return
        await pc.setLocalDescription(answer)
        self._pairing.description_ready(self.connection, "answer", str(pc.localDescription.sdp))

    def apply_answer(self, sdp: str) -> None:
        self._spawn(self._apply_answer(sdp), "applying the answer")

    async def _apply_answer(self, sdp: str) -> None:
        await self.raw.setRemoteDescription(js_object({"type": "answer", "sdp": sdp}))
        self._pairing.remote_description_set(self.connection)

    def add_candidate(self, candidate: dict[str, Any]) -> None:
        self._spawn(self._add_candidate(js_object(candidate)), "adding an ICE candidate")

    async def _add_candidate(self, candidate: Any) -> None:
        try:
            await self.raw.addIceCandidate(candidate)
        except Exception:
            # A candidate the connection cannot use (one of an old connection, say) is not a
            # failure of the connection: ICE goes on with the others.
            self._pairing.ice_candidate_errors += 1
            logger.debug("addIceCandidate failed", exc_info=True)

    # --- the browser's events -----------------------------------------------------------------

    def _on_ice_candidate(self, event: Any) -> None:
        # Gathering ends with a null candidate, which arrives as ``jsnull``, not ``None``.
        raw = event.candidate
        if raw is not None and raw is not jsnull:
            self._pairing.candidate_gathered(self.connection, json.loads(js.JSON.stringify(raw)))

    def _on_ice_candidate_error(self, event: Any) -> None:
        self._pairing.candidate_error(
            {
                "url": str(event.url),
                "error_code": int(event.errorCode),
                "error_text": str(event.errorText),
            }
        )

    def _on_connection_state(self, *_: Any) -> None:
        if str(self.raw.connectionState) == "failed":
            self._pairing.connection_failed(self.connection)

    def _open_ping_channel(self) -> None:
        """The RTT's own channel, held by a worker that stamps arrivals and departures (see
        ``P2PSession.attach_ping_channel``); a peer without it simply never answers on it. A
        browser that cannot move a DataChannel into a worker goes without (the channel is closed):
        the peer's probes there go unanswered, and both measure RTT on the game channel."""
        raw = self.raw.createDataChannel(
            PING_CHANNEL_LABEL,
            js_object(
                {"negotiated": True, "id": PING_CHANNEL_ID, "ordered": False, "maxRetransmits": 0}
            ),
        )
        channel = WorkerChannel()
        create = self._proxies.create
        channel.handle = self._shim.workerChannel(
            raw,
            create(self._on_ping_channel_data),
            create(channel.state_changed),
            create(self._on_ping_left),
        )
        if channel.handle is None:
            raw.close()
            return
        self._ping_channel = channel
        self._pairing.ping_channel_attached(channel)

    def _on_ping_channel_data(self, data: Any, arrival_ms: float) -> None:
        session = self._pairing.session
        if session is not None:
            session.edge.on_ping_channel_message(payload_bytes(data), arrival_ms)

    def _on_ping_left(self, timestamp_ms: float, left_ms: float) -> None:
        session = self._pairing.session
        if session is not None:
            session.edge.on_ping_left(timestamp_ms, left_ms)

    def _attach_channel(self, raw: Any) -> None:
        raw.binaryType = "arraybuffer"
        create = self._proxies.create
        raw.onopen = create(self._on_channel_open)
        raw.onclose = create(self._on_channel_close)
        # The shim hands Python the event's data, not the event: reading ``event.data`` through
        # a proxy of the MessageEvent cost 12 us a message, measured.
        raw.onmessage = self._shim.forwardData(create(self._on_channel_data))
        channel = self.channel = JsDataChannel(raw)
        self._pairing.channel_attached(channel)

    def _on_channel_open(self, *_: Any) -> None:
        if self.channel is not None:
            self.channel.state_changed("open")
        self._pairing.channel_opened(self.connection)

    def _on_channel_close(self, *_: Any) -> None:
        if self.channel is not None:
            self.channel.state_changed("closed")
        self._pairing.channel_closed(self.connection)

    def _on_channel_data(self, data: Any) -> None:
        session = self._pairing.session
        if session is None:
            return
        if isinstance(data, str):  # a JS string arrives as str: a text message, not a packet
            session.edge.on_text_message(data)
        else:
            session.edge.on_message(payload_bytes(data))

    # --- the end ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the channels and the connection without waiting for their events (the pairing
        has told the session already)."""
        if self._ping_channel is not None:
            self._ping_channel.close()
            self._ping_channel = None
        if self.channel is not None:
            self.channel.state_changed("closed")
            raw = self.channel.raw
            raw.onopen = raw.onclose = raw.onmessage = None
            raw.close()
            self.channel = None
        pc = self.raw
        pc.onicecandidate = pc.onconnectionstatechange = None
        pc.ondatachannel = None
        pc.close()


class RtcLink:
    """The browser's side of one pairing's peer connections: the current :class:`RtcConnection`,
    opened, fed and closed as the pairing's actions say. A tab holds one (two players) or one
    per peer (a mesh). Each connection's handlers live in :attr:`proxies`, freed when it closes.
    """

    def __init__(self, pairing: Pairing, options: TransportOptions, spawn: Spawn) -> None:
        self.pairing = pairing
        self._options = options
        self._spawn = spawn
        self.proxies = ProxyRegistry()
        #: The current connection (``None`` between connections).
        self.rtc: RtcConnection | None = None

    def carry_out(self, action: EdgeAction) -> bool:
        """Carry out ``action`` if it is a peer connection's; ``False`` if it is not."""
        rtc = self.rtc
        if isinstance(action, OpenConnection):
            pairing = self.pairing
            configuration = self._options.rtc_configuration(
                pairing.ice_servers, pairing.force_relay
            )
            self.rtc = RtcConnection(
                action.connection,
                action.offerer,
                configuration,
                pairing,
                self.proxies,
                self._spawn,
            )
        elif isinstance(action, CloseConnection):
            self.close()
        elif isinstance(action, AcceptOffer):
            if rtc is not None:
                rtc.accept_offer(action.sdp)
        elif isinstance(action, ApplyAnswer):
            if rtc is not None:
                rtc.apply_answer(action.sdp)
        elif isinstance(action, AddCandidate):
            if rtc is not None:
                rtc.add_candidate(action.candidate)
        else:
            return False
        return True

    @property
    def data_channel(self) -> Any:
        """The current connection's game ``RTCDataChannel``, or ``None``."""
        rtc = self.rtc
        return rtc.channel.raw if rtc is not None and rtc.channel is not None else None

    def close_channel(self) -> None:
        """Close only the game DataChannel (tests take the P2P path away with it)."""
        channel = self.data_channel
        if channel is not None:
            channel.close()

    def close(self) -> None:
        rtc, self.rtc = self.rtc, None
        if rtc is not None:
            rtc.close()
        self.proxies.destroy_all()


class SignalingSteps:
    """A tab's signaling steps under way (offers, answers, candidates, a lobby's page fetch):
    each runs to its end, one that throws is told to its pairing (``step_failed``), and
    :meth:`cancel_all` stops those left at close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, pairing: Pairing, coro: Coroutine[Any, Any, None], what: str) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception as exc:
                logger.exception("%s failed", what)
                pairing.step_failed(what, exc)

        task = asyncio.ensure_future(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
