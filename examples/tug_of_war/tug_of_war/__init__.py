"""Tug of war: the README tutorial's two-player game, on p2p_transport's rollback layer."""

from tug_of_war.game import TugOfWar

__all__ = ["TugOfWar"]
