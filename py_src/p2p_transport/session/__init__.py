"""The session: one peer, both paths, and everything measured about them (:class:`P2PSession`)."""
