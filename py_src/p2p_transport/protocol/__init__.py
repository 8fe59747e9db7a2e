"""The protocol pieces, each a sans-IO state machine with an injected clock: senders, the
receiver, acked-input negotiation, control messages, desync checks, RTT, health, routing,
reconnection, the peer-connection state machine, deployed peers' channel validation and episode
messages, fault injection and the relay as a channel."""
