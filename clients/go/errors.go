package dedup

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/dedup-sidecar/dedup/clients/go/dedupv1"
)

// FieldViolation names a bad request field (google.rpc.BadRequest).
type FieldViolation struct {
	Field       string
	Description string
}

// Error is a failed call (or, in a batch, a failed item): a gRPC status code,
// its message, and for INVALID_ARGUMENT the offending fields. It implements
// GRPCStatus, so status.Code(err) works on it.
//
// UNAVAILABLE and DEADLINE_EXCEEDED mean the outcome is unknown: the request
// may or may not have taken effect.
type Error struct {
	Code            codes.Code
	Message         string
	FieldViolations []FieldViolation
}

func (e *Error) Error() string { return fmt.Sprintf("dedup: %s: %s", e.Code, e.Message) }

// GRPCStatus lets status.Code and status.FromError see the code.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

// Code returns the gRPC code of err (codes.OK for nil, codes.Unknown for
// errors that carry none).
func Code(err error) codes.Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return status.Code(err)
}

func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e // already mapped (stream and batch item errors)
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	out := &Error{Code: st.Code(), Message: st.Message()}
	for _, detail := range st.Details() {
		if bad, ok := detail.(*errdetails.BadRequest); ok {
			for _, v := range bad.GetFieldViolations() {
				out.FieldViolations = append(out.FieldViolations, FieldViolation{v.GetField(), v.GetDescription()})
			}
		}
	}
	return out
}

func itemError(e *pb.ItemError) error {
	if e == nil {
		return nil
	}
	out := &Error{Code: codes.Code(e.GetCode()), Message: e.GetMessage()}
	for _, v := range e.GetFieldViolations() {
		out.FieldViolations = append(out.FieldViolations, FieldViolation{v.GetField(), v.GetDescription()})
	}
	return out
}
