"""Zaqar's actions, each implemented once: they check their input (schemas,
limits, names) and call storage. The REST and websocket transports both call
them and only shape the answers."""
