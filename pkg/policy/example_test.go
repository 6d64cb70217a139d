package policy_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nri-csig/nri-csig/pkg/bundlestore"
	"github.com/nri-csig/nri-csig/pkg/keyref"
	"github.com/nri-csig/nri-csig/pkg/policy"
)

// The daemon's wiring, from the node config (pkg/nodeconfig): bundle.file,
// bundle.oci, bundle.signingKey, bundle.interval, stateDir,
// signatures.insecureRegistries and uncovered; a hook writes the audit record
// of every reload and drops cached verdicts. Then one decision for a container.
func Example() {
	ctx := context.Background()
	pub, err := keyref.OpenPublic(ctx, "../../examples/bundle-signing.pub", keyref.Options{})
	if err != nil {
		panic(err)
	}
	state, _ := os.MkdirTemp("", "csig-state")
	defer os.RemoveAll(state)

	store, err := bundlestore.NewStore(
		bundlestore.WithFileSource("../../examples/policy-bundle.yaml"),
		// bundlestore.WithOCISource(cfg.Bundle.OCI, policy.WithInsecureRegistries(cfg.Signatures.InsecureRegistries...)),
		bundlestore.WithSigningKey(pub),
		bundlestore.WithStateDir(state),
		bundlestore.WithInterval(30*time.Second),
		bundlestore.WithReloadHook(func(ev bundlestore.ReloadEvent) {
			fmt.Printf("reload: %s serial %d (err: %v)\n", ev.Outcome, ev.Serial, ev.Err)
		}),
	)
	if err != nil {
		panic(err)
	}
	if err := store.Load(ctx); err != nil {
		panic(err) // the daemon decides: refuse to start, or enforce allow lists only
	}
	// go store.Run(ctx) // hot reload until ctx is done

	b := store.Current()
	for _, p := range b.Covering("prod-1", "payments") {
		// What pkg/verify must check: these witnesses' keys, this threshold.
		fmt.Printf("policy %s: %d of %v\n", p.Name, p.Threshold, p.Witnesses)
	}
	res := b.Decide(policy.Request{
		Cluster:    "prod-1",
		Subject:    policy.Subject{Namespace: "payments", Pod: "api-0", ImageDigests: []string{"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}},
		Signatures: policy.SignedBy{}, // from pkg/verify's cache
		Now:        time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC),
		Uncovered:  policy.UncoveredAllow, // policy.UncoveredDeny when cfg.UncoveredDeny
	})
	fmt.Println(res.Verdict.Decision, res.Verdict.RuleName())
	// Output:
	// reload: loaded serial 5 (err: <nil>)
	// policy production: 2 of [release qa]
	// deny policy/production
}
