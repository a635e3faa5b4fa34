export { DedupClient, type DedupClientOptions } from "./client";
export { processOnce, LeaseLostError, type Lease, type OnceOptions, type OnceOutcome } from "./once";
export { DedupError, type FieldViolation } from "./status";
export type { RetryOptions } from "./retry";
export * from "./types";
