package dev.dedup.client;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.opentelemetry.api.GlobalOpenTelemetry;
import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.api.trace.TraceFlags;
import io.opentelemetry.api.trace.TraceState;
import io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator;
import io.opentelemetry.context.Scope;
import io.opentelemetry.context.propagation.ContextPropagators;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/** The current span's W3C trace context goes into every request's metadata. */
class TracePropagationTest {
  @Test
  void injectsTraceparentOfTheCurrentSpan() {
    GlobalOpenTelemetry.resetForTest();
    GlobalOpenTelemetry.set(OpenTelemetry.propagating(ContextPropagators.create(W3CTraceContextPropagator.getInstance())));
    AtomicReference<Metadata> sent = new AtomicReference<>();
    Channel capture =
        new Channel() {
          @Override
          public <Q, R> ClientCall<Q, R> newCall(MethodDescriptor<Q, R> method, CallOptions options) {
            return new ClientCall<>() {
              @Override
              public void start(Listener<R> listener, Metadata headers) {
                sent.set(headers);
              }

              @Override
              public void request(int n) {}

              @Override
              public void cancel(String message, Throwable cause) {}

              @Override
              public void halfClose() {}

              @Override
              public void sendMessage(Q message) {}
            };
          }

          @Override
          public String authority() {
            return "test";
          }
        };
    SpanContext span =
        SpanContext.create(
            "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", TraceFlags.getSampled(), TraceState.getDefault());
    try (Scope ignored = Span.wrap(span).makeCurrent()) {
      ClientCall<dev.dedup.v1.CheckRequest, dev.dedup.v1.CheckResponse> call =
          new TracePropagation().interceptCall(dev.dedup.v1.DedupGrpc.getCheckMethod(), CallOptions.DEFAULT, capture);
      call.start(new ClientCall.Listener<>() {}, new Metadata());
    } finally {
      GlobalOpenTelemetry.resetForTest();
    }
    assertEquals(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        sent.get().get(Metadata.Key.of("traceparent", Metadata.ASCII_STRING_MARSHALLER)));
  }
}
