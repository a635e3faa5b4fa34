"""`dedup-sidecar verify`: an effectively-once verifier, and the fault tools it (and the chaos tests) use."""
