package dev.dedup.client;

/**
 * The lease is gone (expired, released, forgotten or taken over): thrown by {@link Lease#ensure()}.
 * The effectively-once helper reports a lost lease as {@link EffectivelyOnce.Status#LEASE_LOST}, a
 * value, never as this exception.
 */
public final class LeaseLostException extends RuntimeException {
  private final long token;

  public LeaseLostException(long token) {
    super("lease lost (token " + token + ")");
    this.token = token;
  }

  /** The fencing token of the lost lease. */
  public long token() {
    return token;
  }
}
