"""p2p_server: the reference signaling and relay server (``python -m p2p_server``).

CPython only, never installed in a game page; see :mod:`p2p_server.server`.
"""
