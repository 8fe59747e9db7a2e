"""``python -m p2p_demo``: the two-tab demo (see :mod:`p2p_demo.launcher`)."""

import sys

from p2p_demo.launcher import main

sys.exit(main())
