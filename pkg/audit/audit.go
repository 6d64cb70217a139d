// Package audit writes one structured record per decision, reload or
// violation, where an operator can filter it: journald fields (CSIG_DECISION,
// CSIG_NAMESPACE, ...) when journald is there, JSON lines otherwise.
//
//	journalctl -t nri-csig CSIG_DECISION=deny CSIG_NAMESPACE=prod
package audit

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/coreos/go-systemd/v22/journal"
)

// Record is one audit event. Empty fields are left out.
type Record struct {
	// Event says what happened: "create" (a container being created),
	// "running" (a running container judged again), "reload" (policy bundle).
	Event         string
	Decision      string // allow | deny | would-deny (audit mode) | exempt | accepted | refused
	Rule          string // what decided: allowlist, policy/<name>, exemption/<name>, ...
	Policy        string
	Witness       string
	Mode          string // enforce | audit
	Namespace     string
	Pod           string
	Container     string
	ContainerID   string
	Image         string
	Digest        string
	ConfigDigest  string
	Reason        string
	DurationMS    float64
	BundleSerial  int64
	CtrdNamespace string // containerd namespace, for containers outside the CRI
}

// Sink receives records.
type Sink interface {
	Write(r Record)
}

// fields returns the record as journald variables (upper case, CSIG_ prefix).
func (r Record) fields() map[string]string {
	f := map[string]string{}
	put := func(k, v string) {
		if v != "" {
			f["CSIG_"+k] = v
		}
	}
	put("EVENT", r.Event)
	put("DECISION", r.Decision)
	put("RULE", r.Rule)
	put("POLICY", r.Policy)
	put("WITNESS", r.Witness)
	put("MODE", r.Mode)
	put("NAMESPACE", r.Namespace)
	put("POD", r.Pod)
	put("CONTAINER", r.Container)
	put("CONTAINER_ID", r.ContainerID)
	put("IMAGE", r.Image)
	put("DIGEST", r.Digest)
	put("CONFIG_DIGEST", r.ConfigDigest)
	put("REASON", r.Reason)
	put("CONTAINERD_NAMESPACE", r.CtrdNamespace)
	if r.DurationMS > 0 {
		f["CSIG_DURATION_MS"] = fmt.Sprintf("%.3f", r.DurationMS)
	}
	if r.BundleSerial > 0 {
		f["CSIG_BUNDLE_SERIAL"] = fmt.Sprint(r.BundleSerial)
	}
	return f
}

// Message is the human line of a record (journald's MESSAGE).
func (r Record) Message() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Event, r.Decision)
	if r.Namespace != "" || r.Pod != "" {
		fmt.Fprintf(&b, " %s/%s", r.Namespace, r.Pod)
	}
	if r.Container != "" {
		fmt.Fprintf(&b, " container %q", r.Container)
	}
	if r.Image != "" {
		fmt.Fprintf(&b, " image %s", r.Image)
	}
	if r.Digest != "" {
		fmt.Fprintf(&b, " (%s)", r.Digest)
	}
	if r.Rule != "" {
		fmt.Fprintf(&b, " by %s", r.Rule)
	}
	if r.Reason != "" {
		fmt.Fprintf(&b, ": %s", r.Reason)
	}
	return b.String()
}

// priority maps a record to a syslog priority: refusals and violations warn.
func (r Record) priority() journal.Priority {
	switch r.Decision {
	case "deny", "would-deny", "refused", "exempt":
		return journal.PriWarning
	}
	return journal.PriInfo
}

// Journald sends records to the systemd journal with CSIG_* fields.
type Journald struct {
	// Fallback receives records journald did not take (e.g. it went away).
	Fallback Sink
}

// Write implements Sink.
func (j Journald) Write(r Record) {
	vars := r.fields()
	vars["SYSLOG_IDENTIFIER"] = "nri-csig"
	if err := journal.Send(r.Message(), r.priority(), vars); err != nil && j.Fallback != nil {
		j.Fallback.Write(r)
	}
}

// JSON writes records as JSON lines through a slog logger, with the journald
// field names in lower case (decision, namespace, ...).
type JSON struct{ Log *slog.Logger }

// Write implements Sink.
func (s JSON) Write(r Record) {
	f := r.fields()
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]any, 0, 2*len(keys)+2)
	attrs = append(attrs, "audit", true)
	for _, k := range keys {
		attrs = append(attrs, strings.ToLower(strings.TrimPrefix(k, "CSIG_")), f[k])
	}
	level := slog.LevelInfo
	if r.priority() == journal.PriWarning {
		level = slog.LevelWarn
	}
	s.Log.Log(context.Background(), level, r.Event, attrs...)
}

// Memory keeps records, for tests.
type Memory struct {
	mu      sync.Mutex
	Records []Record
}

// Write implements Sink.
func (m *Memory) Write(r Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Records = append(m.Records, r)
}

// Snapshot returns the records so far.
func (m *Memory) Snapshot() []Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Record(nil), m.Records...)
}

// Open picks the sink: "journald", "json" (to log), or "auto": journald when
// its socket is there, JSON lines otherwise.
func Open(kind string, log *slog.Logger) (Sink, error) {
	js := JSON{Log: log}
	switch kind {
	case "json":
		return js, nil
	case "journald":
		if !journal.Enabled() {
			return nil, fmt.Errorf("--audit=journald: the journal socket /run/systemd/journal/socket is not there")
		}
		return Journald{Fallback: js}, nil
	case "auto", "":
		if journal.Enabled() {
			return Journald{Fallback: js}, nil
		}
		return js, nil
	}
	return nil, fmt.Errorf("--audit=%s: want auto, journald or json", kind)
}
