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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/journal"

	"github.com/nri-csig/nri-csig/pkg/policy"
)

// Decision values of records (CSIG_DECISION). docs/OPERATIONS.md lists
// each with its journald query.
const (
	DecisionAllow     = "allow"      // the container may run
	DecisionDeny      = "deny"       // the container is refused (or, running, found untrusted)
	DecisionExempt    = "exempt"     // allowed by a bundle exemption (break-glass): always a warning
	DecisionWouldDeny = "would-deny" // an audit-mode policy fails; the container runs
	DecisionStopped   = "stopped"    // a running container was found untrusted and stopped
	DecisionAccepted  = "accepted"   // a reload: the new bundle or node config is in force
	DecisionRefused   = "refused"    // a reload: the new bundle or node config was refused
)

// Record is one audit event. Empty fields are left out.
type Record struct {
	// Event says what happened: "create" (a container being created),
	// "running" (a running container judged again), "reload" (policy bundle).
	Event    string
	Decision string // see the Decision constants
	// Rule is what decided: a policy.RuleKind (allowlist, policy, exemption,
	// ...) for decisions, "bundle" or "node-config" for reloads.
	Rule string
	// Policy names the security policy that decided (or, in a would-deny
	// record, the audit-mode policy that fails); empty when no policy decided.
	Policy string
	// Exemption and Revocation name the bundle exemption or revocation that
	// decided.
	Exemption     string
	Revocation    string
	Witness       string
	Mode          string // enforce | audit
	Namespace     string
	Pod           string
	Container     string
	ContainerID   string
	Image         string
	Digest        string // see policy.Verdict.Digest
	ConfigDigest  string
	Reason        string
	DurationMS    float64
	BundleSerial  int64
	CtrdNamespace string // containerd namespace, for containers outside the CRI
}

// FromVerdict is the audit record of one decision: the only place where a
// verdict becomes a record, for pkg/plugin and pkg/watch alike. The caller
// adds what the subject does not carry (ContainerID, CtrdNamespace).
func FromVerdict(event string, s policy.Subject, v policy.Verdict, took time.Duration) Record {
	r := Record{
		Event:        event,
		Decision:     string(v.Decision),
		Rule:         string(v.Kind),
		Witness:      strings.Join(v.Witnesses, ","),
		Mode:         v.Mode,
		Namespace:    s.Namespace,
		Pod:          s.Pod,
		Container:    s.Container,
		Image:        s.ImageName,
		Digest:       v.Digest,
		ConfigDigest: s.ConfigDigest,
		Reason:       v.Reason,
		DurationMS:   float64(took.Microseconds()) / 1000,
	}
	switch v.Kind {
	case policy.RulePolicy:
		r.Policy = v.Policy
	case policy.RuleExemption:
		r.Exemption = v.Policy
		if v.Allowed() {
			r.Decision = DecisionExempt // break-glass: always a warning record
		}
	case policy.RuleRevocation:
		r.Revocation = v.Policy
	}
	return r
}

// Violations are the would-deny records of an allowing verdict: one per
// failing audit-mode policy. The container runs; each record says which
// policy would have refused it.
func Violations(event string, s policy.Subject, v policy.Verdict) []Record {
	if len(v.Violations) == 0 {
		return nil
	}
	out := make([]Record, 0, len(v.Violations))
	for _, viol := range v.Violations {
		out = append(out, Record{
			Event: event, Decision: DecisionWouldDeny, Rule: string(policy.RulePolicy), Policy: viol.Policy, Mode: string(policy.Audit),
			Namespace: s.Namespace, Pod: s.Pod, Container: s.Container, Image: s.ImageName,
			Digest: v.Digest, ConfigDigest: s.ConfigDigest,
			Reason: "audit mode: the container runs, but policy " + viol.Policy + " would refuse it: " + viol.Reason,
		})
	}
	return out
}

// MarkStopped records the outcome of stopping a running untrusted
// container: decision "stopped" when err is nil, else the record stays a
// deny and says why stopping failed.
func (r *Record) MarkStopped(err error) {
	if err != nil {
		r.Reason += fmt.Sprintf("; stopping it failed: %v", err)
		return
	}
	r.Decision = DecisionStopped
	r.Reason += "; stopped"
}

// Sink receives records.
type Sink interface {
	Write(r Record)
}

// nfields bounds the number of fields a record has, to size buffers once.
const nfields = 22

// visit calls f with each non-empty field, in a fixed order, by its
// journald name (CSIG_*) and its JSON name.
func (r *Record) visit(f func(journald, json, value string)) {
	put := func(j, k, v string) {
		if v != "" {
			f(j, k, v)
		}
	}
	put("CSIG_EVENT", "event", r.Event)
	put("CSIG_DECISION", "decision", r.Decision)
	put("CSIG_RULE", "rule", r.Rule)
	put("CSIG_POLICY", "policy", r.Policy)
	put("CSIG_EXEMPTION", "exemption", r.Exemption)
	put("CSIG_REVOCATION", "revocation", r.Revocation)
	put("CSIG_WITNESS", "witness", r.Witness)
	put("CSIG_MODE", "mode", r.Mode)
	put("CSIG_NAMESPACE", "namespace", r.Namespace)
	put("CSIG_POD", "pod", r.Pod)
	put("CSIG_CONTAINER", "container", r.Container)
	put("CSIG_CONTAINER_ID", "container_id", r.ContainerID)
	put("CSIG_IMAGE", "image", r.Image)
	put("CSIG_DIGEST", "digest", r.Digest)
	put("CSIG_CONFIG_DIGEST", "config_digest", r.ConfigDigest)
	put("CSIG_REASON", "reason", r.Reason)
	put("CSIG_CONTAINERD_NAMESPACE", "containerd_namespace", r.CtrdNamespace)
	if r.DurationMS > 0 {
		f("CSIG_DURATION_MS", "duration_ms", strconv.FormatFloat(r.DurationMS, 'f', 3, 64))
	}
	if r.BundleSerial > 0 {
		f("CSIG_BUNDLE_SERIAL", "bundle_serial", strconv.FormatInt(r.BundleSerial, 10))
	}
}

// fields returns the record as journald variables (upper case, CSIG_ prefix).
func (r Record) fields() map[string]string {
	f := make(map[string]string, nfields)
	r.visit(func(j, _, v string) { f[j] = v })
	return f
}

// Message is the human line of a record (journald's MESSAGE).
func (r Record) Message() string {
	var b strings.Builder
	b.Grow(128 + len(r.Reason) + len(r.Image))
	b.WriteString(r.Event)
	b.WriteByte(' ')
	b.WriteString(r.Decision)
	if r.Namespace != "" || r.Pod != "" {
		b.WriteString(" " + r.Namespace + "/" + r.Pod)
	}
	if r.Container != "" {
		b.WriteString(" container " + strconv.Quote(r.Container))
	}
	if r.Image != "" {
		b.WriteString(" image " + r.Image)
	}
	if r.Digest != "" {
		b.WriteString(" (" + r.Digest + ")")
	}
	if r.Rule != "" {
		b.WriteString(" by " + r.Rule)
		for _, name := range [...]string{r.Policy, r.Exemption, r.Revocation} {
			if name != "" {
				b.WriteString("/" + name)
				break
			}
		}
	}
	if r.Reason != "" {
		b.WriteString(": " + r.Reason)
	}
	return b.String()
}

// priority maps a record to a syslog priority: refusals, violations,
// exemptions and stopped containers warn.
func (r Record) priority() journal.Priority {
	switch r.Decision {
	case DecisionDeny, DecisionWouldDeny, DecisionRefused, DecisionExempt, DecisionStopped:
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
	vars := make(map[string]string, nfields+1)
	r.visit(func(k, _, v string) { vars[k] = v })
	vars["SYSLOG_IDENTIFIER"] = "nri-csig"
	if err := journal.Send(r.Message(), r.priority(), vars); err != nil && j.Fallback != nil {
		j.Fallback.Write(r)
	}
}

// JSON writes records as JSON lines through a slog logger, with the journald
// field names in lower case (decision, namespace, ...), in a fixed order.
type JSON struct{ Log *slog.Logger }

// Write implements Sink.
func (s JSON) Write(r Record) {
	level := slog.LevelInfo
	if r.priority() == journal.PriWarning {
		level = slog.LevelWarn
	}
	ctx := context.Background()
	if !s.Log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, nfields+1)
	attrs = append(attrs, slog.Bool("audit", true))
	r.visit(func(_, k, v string) { attrs = append(attrs, slog.String(k, v)) })
	s.Log.LogAttrs(ctx, level, r.Event, attrs...)
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
