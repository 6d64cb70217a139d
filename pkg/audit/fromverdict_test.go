package audit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

const (
	pulled  = "sha256:d000000000000000000000000000000000000000000000000000000000000000"
	signed  = "sha256:5000000000000000000000000000000000000000000000000000000000000000"
	config  = "sha256:c000000000000000000000000000000000000000000000000000000000000000"
	revoked = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
)

var subject = policy.Subject{Namespace: "shop", Pod: "web", Container: "app", ImageName: "reg.example/app:1",
	ConfigDigest: config, ImageDigests: []string{revoked, signed, pulled}, PulledDigest: pulled}

// base are the fields every decision record of subject carries.
func base(decision, rule, digest, reason string) map[string]string {
	return map[string]string{"CSIG_EVENT": "create", "CSIG_DECISION": decision, "CSIG_RULE": rule,
		"CSIG_NAMESPACE": "shop", "CSIG_POD": "web", "CSIG_CONTAINER": "app", "CSIG_IMAGE": "reg.example/app:1",
		"CSIG_DIGEST": digest, "CSIG_CONFIG_DIGEST": config, "CSIG_REASON": reason, "CSIG_DURATION_MS": "0.250"}
}

func with(m map[string]string, kv ...string) map[string]string {
	m = maps.Clone(m)
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// TestFromVerdictFields checks every journald field of the record of each
// kind of verdict: CSIG_POLICY only where a policy decided, CSIG_DIGEST the
// digest that decided or else the pulled one, and the priority.
func TestFromVerdictFields(t *testing.T) {
	cases := map[string]struct {
		v        policy.Verdict
		want     map[string]string
		priority journal.Priority
	}{
		"allow by allow list": {policy.Verdict{Decision: policy.Allow, Kind: policy.RuleAllowlist, Digest: signed, Reason: "listed"},
			base("allow", "allowlist", signed, "listed"), journal.PriInfo},
		"deny by allow list": {policy.Verdict{Decision: policy.Deny, Kind: policy.RuleAllowlist, Digest: pulled, Reason: "not listed"},
			base("deny", "allowlist", pulled, "not listed"), journal.PriWarning},
		"allow by policy": {policy.Verdict{Decision: policy.Allow, Kind: policy.RulePolicy, Policy: "prod", Digest: signed, Reason: "trusted",
			Trusted: true, Witnesses: []string{"ci", "sec"}, Mode: "enforce"},
			with(base("allow", "policy", signed, "trusted"), "CSIG_POLICY", "prod", "CSIG_WITNESS", "ci,sec", "CSIG_MODE", "enforce"), journal.PriInfo},
		"allow by two policies": {policy.Verdict{Decision: policy.Allow, Kind: policy.RulePolicy, Policy: "prod,pci", Digest: signed, Reason: "trusted",
			Witnesses: []string{"ci"}, Mode: "enforce"},
			with(base("allow", "policy", signed, "trusted"), "CSIG_POLICY", "prod,pci", "CSIG_WITNESS", "ci", "CSIG_MODE", "enforce"), journal.PriInfo},
		"deny by policy": {policy.Verdict{Decision: policy.Deny, Kind: policy.RulePolicy, Policy: "prod", Digest: pulled, Reason: "unsigned", Mode: "enforce"},
			with(base("deny", "policy", pulled, "unsigned"), "CSIG_POLICY", "prod", "CSIG_MODE", "enforce"), journal.PriWarning},
		"allow by audit policy": {policy.Verdict{Decision: policy.Allow, Kind: policy.RulePolicy, Policy: "watch", Digest: pulled, Reason: "audit only: x", Mode: "audit"},
			with(base("allow", "policy", pulled, "audit only: x"), "CSIG_POLICY", "watch", "CSIG_MODE", "audit"), journal.PriInfo},
		"exemption": {policy.Verdict{Decision: policy.Allow, Kind: policy.RuleExemption, Policy: "inc-1", Digest: signed, Reason: "hotfix"},
			with(base("exempt", "exemption", signed, "hotfix"), "CSIG_EXEMPTION", "inc-1"), journal.PriWarning},
		"revocation": {policy.Verdict{Decision: policy.Deny, Kind: policy.RuleRevocation, Policy: "sec-93", Digest: revoked, Reason: "revoked"},
			with(base("deny", "revocation", revoked, "revoked"), "CSIG_REVOCATION", "sec-93"), journal.PriWarning},
		"allow uncovered": {policy.Verdict{Decision: policy.Allow, Kind: policy.RuleUncovered, Digest: pulled, Reason: "not covered"},
			base("allow", "uncovered", pulled, "not covered"), journal.PriInfo},
		"deny uncovered": {policy.Verdict{Decision: policy.Deny, Kind: policy.RuleUncovered, Digest: pulled, Reason: "not covered"},
			base("deny", "uncovered", pulled, "not covered"), journal.PriWarning},
		"deadline": {policy.Verdict{Decision: policy.Deny, Kind: policy.RuleDeadline, Digest: pulled, Reason: "too slow"},
			base("deny", "deadline", pulled, "too slow"), journal.PriWarning},
		"image identity": {policy.Verdict{Decision: policy.Deny, Kind: policy.RuleImageIdentity, Digest: pulled, Reason: "unreadable"},
			base("deny", "image-identity", pulled, "unreadable"), journal.PriWarning},
		"no bundle": {policy.Verdict{Decision: policy.Deny, Kind: policy.RuleNoBundle, Digest: pulled, Reason: "none"},
			base("deny", "no-bundle", pulled, "none"), journal.PriWarning},
		"namespace": {policy.Verdict{Decision: policy.Deny, Kind: policy.RuleNamespace, Digest: pulled, Reason: "bad name"},
			base("deny", "namespace", pulled, "bad name"), journal.PriWarning},
		"node integrity": {policy.Verdict{Decision: policy.Deny, Kind: policy.RuleNodeIntegrity, Digest: pulled, Reason: "mounts the NRI socket"},
			base("deny", "node-integrity", pulled, "mounts the NRI socket"), journal.PriWarning},
		"adjustment": {policy.Verdict{Decision: policy.Deny, Kind: policy.RuleAdjustment, Digest: signed, Reason: "another plugin added a mount"},
			base("deny", "adjustment", signed, "another plugin added a mount"), journal.PriWarning},
	}
	covered := map[policy.RuleKind]bool{}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := FromVerdict("create", subject, tc.v, 250*time.Microsecond)
			if got := r.fields(); !maps.Equal(got, tc.want) {
				t.Errorf("fields of %+v:\n got %v\nwant %v", tc.v, got, tc.want)
			}
			if got := r.priority(); got != tc.priority {
				t.Errorf("priority = %d, want %d", got, tc.priority)
			}
		})
		covered[tc.v.Kind] = true
	}
	for _, k := range policy.RuleKinds {
		if !covered[k] {
			t.Errorf("no case for RuleKind %q: add one (and document it in docs/OPERATIONS.md)", k)
		}
	}
}

func TestStoppedAndViolations(t *testing.T) {
	v := policy.Verdict{Decision: policy.Deny, Kind: policy.RulePolicy, Policy: "prod", Digest: pulled, Reason: "unsigned", Mode: "enforce"}
	r := FromVerdict("running", subject, v, 0)
	r.ContainerID = "c1"
	r.MarkStopped(nil)
	want := with(base("stopped", "policy", pulled, "unsigned; stopped"), "CSIG_EVENT", "running", "CSIG_POLICY", "prod",
		"CSIG_MODE", "enforce", "CSIG_CONTAINER_ID", "c1")
	delete(want, "CSIG_DURATION_MS")
	if got := r.fields(); !maps.Equal(got, want) {
		t.Errorf("stopped:\n got %v\nwant %v", got, want)
	}
	if r.priority() != journal.PriWarning {
		t.Error("a stopped container is not a warning")
	}
	r = FromVerdict("running", subject, v, 0)
	r.MarkStopped(errors.New("no running task found"))
	if r.Decision != DecisionDeny || r.Reason != "unsigned; stopping it failed: no running task found" {
		t.Errorf("failed stop = %+v", r)
	}

	allow := policy.Verdict{Decision: policy.Allow, Kind: policy.RulePolicy, Policy: "prod", Digest: signed, Mode: "enforce",
		Violations: []policy.Violation{{Policy: "watch", Reason: "not signed by sec"}}}
	recs := Violations("create", subject, allow)
	if len(recs) != 1 {
		t.Fatalf("%d violation records, want 1", len(recs))
	}
	want = with(base("would-deny", "policy", signed, "audit mode: the container runs, but policy watch would refuse it: not signed by sec"),
		"CSIG_POLICY", "watch", "CSIG_MODE", "audit")
	delete(want, "CSIG_DURATION_MS")
	if got := recs[0].fields(); !maps.Equal(got, want) {
		t.Errorf("would-deny:\n got %v\nwant %v", got, want)
	}
	if recs[0].priority() != journal.PriWarning {
		t.Error("a would-deny is not a warning")
	}
	if Violations("create", subject, v) != nil {
		t.Error("violation records for a verdict without violations")
	}
}

// BenchmarkJournaldFields is what the journald sink did for one record
// before the write to journald's socket (the field map and the message),
// and what its fallback still does; BenchmarkJournaldEncode is what it does
// now.
//
//	go test -run '^$' -bench 'BenchmarkJournald' -benchmem ./pkg/audit/
func BenchmarkJournaldFields(b *testing.B) {
	v := policy.Verdict{Decision: policy.Allow, Kind: policy.RulePolicy, Policy: "prod", Digest: signed,
		Reason: `trusted by policy "prod": signed by witness ci`, Trusted: true, Witnesses: []string{"ci"}, Mode: "enforce"}
	b.ReportAllocs()
	for b.Loop() {
		r := FromVerdict("create", subject, v, 250*time.Microsecond)
		if f := r.fields(); len(f) == 0 || r.Message() == "" {
			b.Fatal("empty record")
		}
	}
}

// TestJournaldWire reads back what the journald sink sends, from a socket
// standing in for journald's, and parses the native protocol: every field
// of the record, MESSAGE, PRIORITY and SYSLOG_IDENTIFIER, values with
// newlines framed by length.
func TestJournaldWire(t *testing.T) {
	dir, err := os.MkdirTemp("", "jd") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "socket")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	v := policy.Verdict{Decision: policy.Deny, Kind: policy.RulePolicy, Policy: "prod", Digest: pulled, Mode: "enforce",
		Reason: "unsigned\nsecond line of a library's error"}
	r := FromVerdict("create", subject, v, 250*time.Microsecond)
	mem := &Memory{}
	Journald{socket: path, Fallback: mem}.Write(r)
	if len(mem.Snapshot()) != 0 {
		t.Fatal("the record went to the fallback")
	}
	buf := make([]byte, 65536)
	_ = l.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := l.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseNative(buf[:n])
	if err != nil {
		t.Fatalf("%v in %q", err, buf[:n])
	}
	want := r.fields()
	want["MESSAGE"], want["PRIORITY"], want["SYSLOG_IDENTIFIER"] = r.Message(), "4", "nri-csig"
	if !maps.Equal(got, want) {
		t.Errorf("datagram fields:\n got %q\nwant %q", got, want)
	}

	// journald gone: the record is not lost.
	l.Close()
	os.Remove(path)
	Journald{socket: path, Fallback: mem}.Write(r)
	if len(mem.Snapshot()) != 1 {
		t.Error("with journald gone, the record did not reach the fallback")
	}
}

// parseNative parses journald's native protocol.
func parseNative(b []byte) (map[string]string, error) {
	f := map[string]string{}
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("unterminated field")
		}
		line := string(b[:nl])
		if k, v, ok := strings.Cut(line, "="); ok {
			f[k] = v
			b = b[nl+1:]
			continue
		}
		b = b[nl+1:]
		if len(b) < 8 {
			return nil, fmt.Errorf("field %s: no length", line)
		}
		size := binary.LittleEndian.Uint64(b)
		b = b[8:]
		if uint64(len(b)) < size+1 || b[size] != '\n' {
			return nil, fmt.Errorf("field %s: bad length %d", line, size)
		}
		f[line] = string(b[:size])
		b = b[size+1:]
	}
	return f, nil
}

func BenchmarkJournaldEncode(b *testing.B) {
	v := policy.Verdict{Decision: policy.Allow, Kind: policy.RulePolicy, Policy: "prod", Digest: signed,
		Reason: `trusted by policy "prod": signed by witness ci`, Trusted: true, Witnesses: []string{"ci"}, Mode: "enforce"}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		r := FromVerdict("create", subject, v, 250*time.Microsecond)
		buf = r.appendJournal(buf[:0])
	}
}
