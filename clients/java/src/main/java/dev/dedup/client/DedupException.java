package dev.dedup.client;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.util.ArrayList;
import java.util.List;

/** A failed call: the gRPC status code, and for INVALID_ARGUMENT the BadRequest field violations. */
public final class DedupException extends RuntimeException {
  private final Status.Code code;
  private final List<BadRequest.FieldViolation> fieldViolations;
  private final int attempts;

  DedupException(StatusRuntimeException cause, int attempts) {
    super(cause.getStatus().getCode() + ": " + cause.getStatus().getDescription(), cause);
    this.code = cause.getStatus().getCode();
    this.fieldViolations = violations(cause);
    this.attempts = attempts;
  }

  /** A failure the client itself reports (e.g. the helper's "commit not recorded"), caused by {@code cause}. */
  DedupException(Status.Code code, String message, DedupException cause) {
    super(code + ": " + message, cause);
    this.code = code;
    this.fieldViolations = List.of();
    this.attempts = cause.attempts();
  }

  /** The gRPC status code, e.g. INVALID_ARGUMENT, UNAVAILABLE, DEADLINE_EXCEEDED. */
  public Status.Code code() {
    return code;
  }

  public List<BadRequest.FieldViolation> fieldViolations() {
    return fieldViolations;
  }

  /** How many attempts were made (retries happen only where safe; see README). */
  public int attempts() {
    return attempts;
  }

  private static List<BadRequest.FieldViolation> violations(StatusRuntimeException e) {
    List<BadRequest.FieldViolation> out = new ArrayList<>();
    com.google.rpc.Status status = StatusProto.fromThrowable(e);
    if (status == null) {
      return out;
    }
    for (com.google.protobuf.Any detail : status.getDetailsList()) {
      if (detail.is(BadRequest.class)) {
        try {
          out.addAll(detail.unpack(BadRequest.class).getFieldViolationsList());
        } catch (InvalidProtocolBufferException ignored) {
          // undecodable details: report the status without violations
        }
      }
    }
    return List.copyOf(out);
  }
}
