package dev.dedup.client;

/**
 * How {@link DedupClient} carries Check, Claim, Commit, Release and Renew (docs/adr/0013).
 *
 * <ul>
 *   <li>{@link #STREAM} (default): one long-lived, multiplexed {@code Stream} per client, opened on
 *       the first call; concurrent calls of one kind are coalesced into batch messages; falls back
 *       to unary calls when the server answers UNIMPLEMENTED.
 *   <li>{@link #UNARY}: one unary RPC per call.
 * </ul>
 *
 * Inspect, Forget and the explicit batch calls are always unary.
 */
public enum Transport {
  STREAM,
  UNARY
}
