// gRPC failures as one error type, with google.rpc.BadRequest field violations
// decoded from the `grpc-status-details-bin` trailer.
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { type ServiceError, status as Status } from "@grpc/grpc-js";

export interface FieldViolation {
  field: string;
  description: string;
}

/** A failed call: `code` is the gRPC status code, `codeName` its name (e.g. "INVALID_ARGUMENT"). */
export class DedupError extends Error {
  readonly code: Status;
  readonly codeName: string;
  readonly details: string;
  readonly fieldViolations: FieldViolation[];
  /** How many attempts were made (retries happen only where safe: see README). */
  readonly attempts: number;

  constructor(code: Status, details: string, fieldViolations: FieldViolation[] = [], attempts = 1) {
    super(`${Status[code] ?? code}: ${details}`);
    this.name = "DedupError";
    this.code = code;
    this.codeName = Status[code] ?? String(code);
    this.details = details;
    this.fieldViolations = fieldViolations;
    this.attempts = attempts;
  }

  static from(err: unknown, attempts = 1): DedupError {
    if (err instanceof DedupError) {
      return err.attempts === attempts ? err : new DedupError(err.code, err.details, err.fieldViolations, attempts);
    }
    const se = err as Partial<ServiceError>;
    if (typeof se.code === "number") {
      const raw = se.metadata?.get("grpc-status-details-bin")?.[0];
      const violations = raw instanceof Buffer ? decodeBadRequest(raw) : [];
      return new DedupError(se.code, se.details ?? se.message ?? "", violations, attempts);
    }
    return new DedupError(Status.UNKNOWN, String(err), [], attempts);
  }
}

const BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest";

/** Field violations in a serialized google.rpc.Status (empty when it has no BadRequest). */
export function decodeBadRequest(statusBytes: Uint8Array): FieldViolation[] {
  const out: FieldViolation[] = [];
  try {
    const status = new BinaryReader(statusBytes);
    while (status.pos < status.len) {
      const [field, wire] = status.tag();
      if (field !== 3) {
        status.skip(wire);
        continue;
      }
      // google.protobuf.Any { string type_url = 1; bytes value = 2; }
      const any = new BinaryReader(status.bytes());
      let typeUrl = "";
      let value: Uint8Array = new Uint8Array();
      while (any.pos < any.len) {
        const [f, w] = any.tag();
        if (f === 1) typeUrl = any.string();
        else if (f === 2) value = any.bytes();
        else any.skip(w);
      }
      if (typeUrl === BAD_REQUEST_TYPE) out.push(...decodeViolations(value));
    }
  } catch {
    // Undecodable details: report the status without violations.
  }
  return out;
}

function decodeViolations(badRequest: Uint8Array): FieldViolation[] {
  const out: FieldViolation[] = [];
  const reader = new BinaryReader(badRequest);
  while (reader.pos < reader.len) {
    const [field, wire] = reader.tag();
    if (field !== 1) {
      reader.skip(wire);
      continue;
    }
    const v = new BinaryReader(reader.bytes());
    const violation: FieldViolation = { field: "", description: "" };
    while (v.pos < v.len) {
      const [f, w] = v.tag();
      if (f === 1) violation.field = v.string();
      else if (f === 2) violation.description = v.string();
      else v.skip(w);
    }
    out.push(violation);
  }
  return out;
}
