package audit

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
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
	JSON{Log: slog.New(slog.NewJSONHandler(&buf, nil))}.Write(Record{Event: "create", Decision: "allow", Namespace: "ns"})
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["audit"] != true || got["decision"] != "allow" || got["namespace"] != "ns" || got["msg"] != "create" {
		t.Errorf("record = %v", got)
	}
}

func TestOpen(t *testing.T) {
	if _, err := Open("syslog", slog.Default()); err == nil {
		t.Error("accepted an unknown sink")
	}
	if s, err := Open("json", slog.Default()); err != nil || s == nil {
		t.Errorf("json: %v", err)
	}
}
