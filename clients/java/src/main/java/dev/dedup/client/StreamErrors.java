package dev.dedup.client;

import com.google.protobuf.Any;
import com.google.rpc.BadRequest;
import dev.dedup.v1.FieldViolation;
import dev.dedup.v1.ItemError;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;

/** Turns a Stream message's (or batch item's) {@code ItemError} into the error a unary call raises. */
final class StreamErrors {
  private StreamErrors() {}

  static StatusRuntimeException toException(ItemError e) {
    if (e.getFieldViolationsCount() == 0) {
      return Status.fromCodeValue(e.getCode()).withDescription(e.getMessage()).asRuntimeException();
    }
    BadRequest.Builder bad = BadRequest.newBuilder();
    for (FieldViolation v : e.getFieldViolationsList()) {
      bad.addFieldViolations(
          BadRequest.FieldViolation.newBuilder().setField(v.getField()).setDescription(v.getDescription()));
    }
    com.google.rpc.Status status =
        com.google.rpc.Status.newBuilder()
            .setCode(e.getCode())
            .setMessage(e.getMessage())
            .addDetails(Any.pack(bad.build()))
            .build();
    return StatusProto.toStatusRuntimeException(status);
  }

  /**
   * The status in-flight calls fail with when the whole stream ends: transient ends become
   * UNAVAILABLE (retried like a unary UNAVAILABLE); UNIMPLEMENTED and refusals keep their code.
   */
  static Status streamEnded(Status s) {
    switch (s.getCode()) {
      case UNIMPLEMENTED:
      case UNAUTHENTICATED:
      case PERMISSION_DENIED:
      case INVALID_ARGUMENT:
      case NOT_FOUND:
      case RESOURCE_EXHAUSTED:
      case FAILED_PRECONDITION:
        return s;
      default:
        return Status.UNAVAILABLE.withDescription("stream ended: " + s.getCode() + " " + s.getDescription());
    }
  }
}
