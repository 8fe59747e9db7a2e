"""Which ICE path the DataChannel takes: by default a direct loopback candidate learned from the
STUN server, and with ``relay_only`` every packet through coturn's TURN relay."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext
from test_transport import FRAMES, open_pair

from p2p_demo.harness import TurnServer
from p2p_server.server import ServerThread

# The local candidate of the pair ICE selected, read from the peer connection's own stats.
SELECTED_LOCAL_CANDIDATE_JS = """async () => {
    const stats = await p2pDemo.transport.peer_connection.getStats();
    let pairId = null;
    stats.forEach((s) => {
        if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    if (pairId === null) return null;
    const pair = stats.get(pairId);
    const local = stats.get(pair.localCandidateId);
    return {type: local.candidateType, address: local.address};
}"""


@pytest.mark.parametrize(("relay_only", "expected_type"), [(False, "srflx"), (True, "relay")])
def test_the_channel_takes_the_configured_ice_path(
    context: BrowserContext,
    console_messages: list[str],
    server: ServerThread,
    turn: TurnServer,
    relay_only: bool,
    expected_type: str,
) -> None:
    tabs = open_pair(
        context,
        server,
        turn,
        console_messages,
        frames=FRAMES // 5,
        relay_only=relay_only,
        relay_inputs=False,
    )
    for tab in tabs:
        tab.wait_open()
    for tab in tabs:
        tab.wait_game_done(FRAMES // 5)
        game = tab.report()["game"]
        assert game["delivered_exactly_once"], game
        selected = tab.page.evaluate(SELECTED_LOCAL_CANDIDATE_JS)
        assert selected == {"type": expected_type, "address": "127.0.0.1"}
