"""``python -m p2p_server``: run the reference server (see :mod:`p2p_server.server`)."""

import sys

from p2p_server.server import main

sys.exit(main())
