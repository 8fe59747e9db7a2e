"""The smallest two-player P2P experiment the deployed interactive_gym / mug server runs: a start
scene, a game scene of two human players, an end scene. Run by the mug server's own venv
(``.venv-mug``, made by ``scripts/setup.sh``), from a scratch directory (it writes ``iglog.log``
and ``data/`` there):

    .venv-mug/bin/python tests/mug_experiment/experiment.py PORT string|int [USER CREDENTIAL]

``string`` gives the players the ids ``"agent_left"``/``"agent_right"``, ``int`` the ids 0/1.
``USER CREDENTIAL``: the TURN credentials the server hands both players (``turn_config``), as a
deployment configures them; the pages hold the TURN URLs.
The server never runs the environment code: the transport's tests play no game of mug's.
"""

import eventlet

eventlet.monkey_patch()

import logging  # noqa: E402
import sys  # noqa: E402

from mug.configurations.configuration_constants import PolicyTypes  # noqa: E402
from mug.configurations.experiment_config import ExperimentConfig  # noqa: E402
from mug.scenes.gym_scene import GymScene  # noqa: E402
from mug.scenes.stager import Stager  # noqa: E402
from mug.scenes.static_scene import EndScene, StartScene  # noqa: E402
from mug.server import app  # noqa: E402

#: The two id styles mug studies use: named agents (its examples) or integer indices.
PLAYER_IDS = {"string": ("agent_left", "agent_right"), "int": (0, 1)}


def main() -> None:
    port, style, *turn = sys.argv[1:]
    # The server's modules other than its app log through the root logger, bare (no level) on
    # stderr: with its app's format, every warning and error in the log says what it is.
    logging.basicConfig(
        format="%(asctime)s - %(name)s - %(levelname)s - %(message)s", level=logging.WARNING
    )
    players = PLAYER_IDS[style]
    game = (
        GymScene()
        .scene(scene_id="p2p_game")
        .policies(policy_mapping={player: PolicyTypes.Human for player in players})
        .runtime(environment_initialization_code="env = None")
        .multiplayer(input_delay=2)
    )
    stager = Stager(
        scenes=[
            StartScene().scene(scene_id="start"),
            game,
            EndScene().scene(scene_id="end"),
        ]
    )
    config = (
        ExperimentConfig()
        .experiment(stager=stager, experiment_id=f"p2p_transport_{style}")
        .hosting(port=int(port), host="127.0.0.1")
    )
    if turn:
        config.webrtc(turn_username=turn[0], turn_credential=turn[1])
    app.run(config)


if __name__ == "__main__":
    main()
