"""cti-bridge: Asterisk calls become prefilled tickets, popped to the agent, recorded and transcribed."""
