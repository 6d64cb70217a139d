package cli

import (
	"testing"

	"github.com/spf13/cobra"
)

// TestRegistryFlagsFollowCosign: --allow-insecure-registry skips TLS
// verification only; --allow-http-registry allows plain HTTP (issue 11).
func TestRegistryFlagsFollowCosign(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		http, tls bool
	}{
		{nil, false, false},
		{[]string{"--allow-insecure-registry"}, false, true},
		{[]string{"--allow-http-registry"}, true, false},
		{[]string{"--allow-http-registry", "--allow-insecure-registry"}, true, true},
	} {
		var f registryFlags
		cmd := &cobra.Command{}
		f.addFlags(cmd)
		if err := cmd.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		c := f.client()
		if got := c.HTTPAllowed("10.0.0.1:5000"); got != tc.http {
			t.Errorf("%v: plain HTTP to 10.0.0.1:5000 allowed = %v; want %v", tc.args, got, tc.http)
		}
		if got := c.HTTPAllowed("127.0.0.1:5000"); !got {
			t.Errorf("%v: plain HTTP to loopback refused", tc.args)
		}
		if f.allowInsecure != tc.tls {
			t.Errorf("%v: skip TLS verification = %v; want %v", tc.args, f.allowInsecure, tc.tls)
		}
	}
	for _, cmd := range []*cobra.Command{newSignCmd(), newVerifyCmd(), newBundlePushCmd(&bundleFile{}), newBundlePullCmd(&bundleFile{})} {
		for _, name := range []string{"allow-insecure-registry", "allow-http-registry", "timeout"} {
			if cmd.Flags().Lookup(name) == nil {
				t.Errorf("%s has no --%s", cmd.Name(), name)
			}
		}
	}
}
