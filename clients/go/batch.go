package dedup

import (
	"context"
	"time"

	pb "github.com/dedup-sidecar/dedup/clients/go/dedupv1"
)

// CheckItem is one item of CheckBatch.
type CheckItem struct {
	ID          []byte
	Fingerprint []byte
	Window      time.Duration
}

// ClaimItem is one item of ClaimBatch.
type ClaimItem struct {
	ID          []byte
	Fingerprint []byte
	Lease       time.Duration
	Wait        time.Duration // wait_ms (see Wait)
}

// CommitItem is one item of CommitBatch.
type CommitItem struct {
	ID           []byte
	FencingToken uint64
	Result       []byte // stored when non-nil
	Window       time.Duration
}

// CheckIDs makes CheckItems of bare ids.
func CheckIDs(ids ...[]byte) []CheckItem {
	items := make([]CheckItem, len(ids))
	for i, id := range ids {
		items[i] = CheckItem{ID: id}
	}
	return items
}

// ClaimIDs makes ClaimItems of bare ids.
func ClaimIDs(ids ...[]byte) []ClaimItem {
	items := make([]ClaimItem, len(ids))
	for i, id := range ids {
		items[i] = ClaimItem{ID: id}
	}
	return items
}

// CheckBatch is Check for many ids in one call: one result per item, in order
// (a failed item has Err set). Never retried once sent.
func (c *Client) CheckBatch(ctx context.Context, namespace string, items []CheckItem) ([]CheckResult, error) {
	req := &pb.CheckBatchRequest{}
	for _, it := range items {
		req.Items = append(req.Items, &pb.CheckRequest{
			Namespace: namespace, Id: it.ID, Fingerprint: it.Fingerprint, WindowMs: it.Window.Milliseconds(),
		})
	}
	r, err := invoke(ctx, c, "CheckBatch", req, c.stub.CheckBatch, kindNone)
	if err != nil {
		return nil, err
	}
	out := make([]CheckResult, len(r.GetResults()))
	for i, x := range r.GetResults() {
		out[i] = checkResult(x)
	}
	return out, nil
}

// ClaimBatch is Claim for many ids in one call: one result per item, in order.
func (c *Client) ClaimBatch(ctx context.Context, namespace string, items []ClaimItem) ([]ClaimResult, error) {
	req := &pb.ClaimBatchRequest{}
	for _, it := range items {
		req.Items = append(req.Items, &pb.ClaimRequest{
			Namespace: namespace, Id: it.ID, Fingerprint: it.Fingerprint, LeaseMs: it.Lease.Milliseconds(),
			WaitMs: it.Wait.Milliseconds(),
		})
	}
	r, err := invoke(ctx, c, "ClaimBatch", req, c.stub.ClaimBatch, kindNone)
	if err != nil {
		return nil, err
	}
	out := make([]ClaimResult, len(r.GetResults()))
	for i, x := range r.GetResults() {
		out[i] = claimResult(x)
	}
	return out, nil
}

// CommitBatch is Commit for many claimed ids in one call: one result per item, in order.
func (c *Client) CommitBatch(ctx context.Context, namespace string, items []CommitItem) ([]CommitResult, error) {
	req := &pb.CommitBatchRequest{}
	for _, it := range items {
		req.Items = append(req.Items, commitRequest(namespace, it.ID, it.FencingToken,
			callArgs{window: it.Window, result: it.Result, hasResult: it.Result != nil}))
	}
	r, err := invoke(ctx, c, "CommitBatch", req, c.stub.CommitBatch, kindNone)
	if err != nil {
		return nil, err
	}
	out := make([]CommitResult, len(r.GetResults()))
	for i, x := range r.GetResults() {
		out[i] = commitResult(x)
	}
	return out, nil
}
