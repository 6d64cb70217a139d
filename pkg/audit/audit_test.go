package audit

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestRecordFields(t *testing.T) {
	r := Record{Event: "create", Decision: "deny", Rule: "policy", Policy: "prod", Witness: "ci",
		Namespace: "shop", Pod: "web", Container: "app", Image: "reg/app:1", Digest: "sha256:ab", Reason: "unsigned", Mode: "enforce", DurationMS: 0.5}
	f := r.fields()
	for k, want := range map[string]string{"CSIG_DECISION": "deny", "CSIG_POLICY": "prod", "CSIG_WITNESS": "ci",
		"CSIG_NAMESPACE": "shop", "CSIG_POD": "web", "CSIG_CONTAINER": "app", "CSIG_IMAGE": "reg/app:1",
		"CSIG_DIGEST": "sha256:ab", "CSIG_REASON": "unsigned", "CSIG_MODE": "enforce", "CSIG_DURATION_MS": "0.500"} {
		if f[k] != want {
			t.Errorf("%s = %q, want %q", k, f[k], want)
		}
	}
	if _, ok := f["CSIG_CONFIG_DIGEST"]; ok {
		t.Errorf("empty fields must be left out")
	}
	if r.priority() != 4 { // warning
		t.Errorf("a deny is not a warning")
	}
	msg := r.Message()
	for _, want := range []string{"create deny", "shop/web", `"app"`, "reg/app:1", "by policy/prod", "unsigned"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}

func TestJSONSink(t *testing.T) {
	var buf bytes.Buffer
	NewJSON(&LockedWriter{W: &buf}, "component", "nri-csig").Write(Record{Event: "create", Decision: "allow", Namespace: "ns"})
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["audit"] != true || got["decision"] != "allow" || got["namespace"] != "ns" || got["msg"] != "create" ||
		got["component"] != "nri-csig" || got["level"] != "INFO" {
		t.Errorf("record = %v", got)
	}
	if _, err := time.Parse(time.RFC3339Nano, got["time"].(string)); err != nil {
		t.Errorf("time: %v", err)
	}
}

// The JSON sink writes the very line slog's JSON handler (the daemon's log)
// writes for the same record, escapes included: one reader takes both.
func TestJSONSinkWritesSlogsLine(t *testing.T) {
	tricky := []string{
		`quote " backslash \ slash /`, "new\nline\r\ttab", "ctl \x00\x01\x1f\x7f", "bad utf8 \xff\xfe end",
		"seps \u2028 \u2029", "html <script>&amp;", "ünïcödé 日本", "truncated \xe6\x97",
	}
	for _, s := range tricky {
		r := Record{Event: "create", Decision: DecisionDeny, Rule: "policy", Policy: s, Namespace: "ns", Pod: s,
			Image: "reg/app:1", Reason: s, DurationMS: 1.25, BundleSerial: 7}
		var ours, theirs bytes.Buffer
		NewJSON(&LockedWriter{W: &ours}, "component", "nri-csig").Write(r)
		Log{Log: slog.New(slog.NewJSONHandler(&theirs, nil)).With("component", "nri-csig")}.Write(r)
		stamp := regexp.MustCompile(`^\{"time":"[^"]*",`)
		a, b := stamp.ReplaceAllString(ours.String(), "{"), stamp.ReplaceAllString(theirs.String(), "{")
		if a != b {
			t.Errorf("for %q:\n ours   %s\n slog's %s", s, a, b)
		}
		if !json.Valid(ours.Bytes()) || strings.Count(ours.String(), "\n") != 1 {
			t.Errorf("not one JSON line: %q", ours.String())
		}
	}
}

func TestOpen(t *testing.T) {
	js := NewJSON(&LockedWriter{W: io.Discard})
	if _, err := Open("syslog", js); err == nil {
		t.Error("accepted an unknown sink")
	}
	if s, err := Open("json", js); err != nil || s == nil {
		t.Errorf("json: %v", err)
	}
}

func BenchmarkJSONSink(b *testing.B) {
	r := Record{Event: "create", Decision: "allow", Rule: "policy", Policy: "prod", Witness: "ci", Mode: "enforce",
		Namespace: "prod", Pod: "web", Container: "app", ContainerID: "ctr-0001", Image: "registry.example/app:1",
		Digest: "sha256:" + strings.Repeat("ab", 32), ConfigDigest: "sha256:" + strings.Repeat("cd", 32),
		Reason: `trusted by policy "prod": signed by witness ci`, DurationMS: 0.042}
	for _, sink := range []struct {
		name string
		s    Sink
	}{
		{"json", NewJSON(&LockedWriter{W: io.Discard}, "component", "nri-csig")},
		{"slog", Log{Log: slog.New(slog.NewJSONHandler(io.Discard, nil)).With("component", "nri-csig")}},
	} {
		b.Run(sink.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink.s.Write(r)
			}
		})
	}
}
