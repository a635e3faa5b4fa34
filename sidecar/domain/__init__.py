"""The domain: names, outcomes, validation, policies and key derivation.

Nothing in this package imports grpc or redis.
"""
