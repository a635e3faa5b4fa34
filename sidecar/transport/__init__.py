"""gRPC transport: proto <-> domain translation, the status table, the server."""
