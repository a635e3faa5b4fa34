"""dedup sidecar: an atomic "has this message ID been processed?" service over gRPC."""

__version__ = "0.1.0"
