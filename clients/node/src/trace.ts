// W3C trace context (traceparent/tracestate) from the caller's active
// OpenTelemetry context into gRPC metadata, via the globally registered
// propagator (a no-op until the application registers one, e.g. the SDK's).
import { context, propagation } from "@opentelemetry/api";
import { Metadata } from "@grpc/grpc-js";

const setter = {
  set(carrier: Metadata, key: string, value: string): void {
    carrier.set(key, value);
  },
};

export function traceMetadata(): Metadata {
  const md = new Metadata();
  propagation.inject(context.active(), md, setter);
  return md;
}
