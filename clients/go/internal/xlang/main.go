// Command xlang is the Go side of the cross-language protocol
// (tests/contract/test_cross_language.py).
//
// Env: DEDUP_TARGET, XLANG_MODE (commit | expect-duplicate), XLANG_NAMESPACE,
// XLANG_IDS (comma-separated). commit: claim + commit every id, expecting
// ACQUIRED then COMMITTED; expect-duplicate: claim and check every id,
// expecting DUPLICATE for both. Prints a one-line summary; exits 0 iff every
// expectation held.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	dedup "github.com/dedup-sidecar/dedup/clients/go"
)

func main() {
	mode, ns := os.Getenv("XLANG_MODE"), os.Getenv("XLANG_NAMESPACE")
	var ids []string
	for _, id := range strings.Split(os.Getenv("XLANG_IDS"), ",") {
		if id != "" {
			ids = append(ids, id)
		}
	}
	client, err := dedup.New(os.Getenv("DEDUP_TARGET"))
	if err != nil {
		fmt.Printf("go xlang: %v\n", err)
		os.Exit(2)
	}
	defer client.Close()
	ctx := context.Background()
	var failures []string
	for _, id := range ids {
		switch mode {
		case "commit":
			claim, err := client.Claim(ctx, ns, []byte(id))
			if err != nil || claim.Outcome != dedup.ClaimAcquired {
				failures = append(failures, fmt.Sprintf("%s: claim %s %v", id, claim.Outcome, err))
				continue
			}
			commit, err := client.Commit(ctx, ns, []byte(id), claim.FencingToken)
			if err != nil || commit.Outcome != dedup.Committed {
				failures = append(failures, fmt.Sprintf("%s: commit %s %v", id, commit.Outcome, err))
			}
		case "expect-duplicate":
			claim, err1 := client.Claim(ctx, ns, []byte(id))
			check, err2 := client.Check(ctx, ns, []byte(id))
			if err1 != nil || err2 != nil || claim.Outcome != dedup.ClaimDuplicate || check.Outcome != dedup.CheckDuplicate {
				failures = append(failures, fmt.Sprintf("%s: claim %s %v, check %s %v", id, claim.Outcome, err1, check.Outcome, err2))
			}
		default:
			fmt.Printf("go xlang: unknown XLANG_MODE %q\n", mode)
			os.Exit(2)
		}
	}
	verdict := "ok"
	if len(failures) > 0 {
		verdict = "FAILED " + strings.Join(failures, "; ")
	}
	fmt.Printf("go xlang %s ns=%s ids=%d: %s\n", mode, ns, len(ids), verdict)
	if len(failures) > 0 {
		os.Exit(1)
	}
}
