"""The Redis adapter: Lua scripts (the state machine), error mapping, startup checks."""
