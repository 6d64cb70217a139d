// Package audit writes one structured record per decision, reload or
// violation, where an operator can filter it: journald fields (CSIG_DECISION,
// CSIG_NAMESPACE, ...) when journald is there, JSON lines otherwise.
//
//	journalctl -t nri-csig CSIG_DECISION=deny CSIG_NAMESPACE=prod
package audit

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
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

// nfields is the number of fields a record has.
const nfields = 19

// field is one record field: its journald name (CSIG_*), its JSON name and
// its value ("" when the record does not have it).
type field struct{ journald, json, value string }

// table returns every field of the record in a fixed order, on the stack:
// the sinks iterate it and skip empty values.
func (r *Record) table() [nfields]field {
	var dur, serial string
	if r.DurationMS > 0 {
		dur = strconv.FormatFloat(r.DurationMS, 'f', 3, 64)
	}
	if r.BundleSerial > 0 {
		serial = strconv.FormatInt(r.BundleSerial, 10)
	}
	return [nfields]field{
		{"CSIG_EVENT", "event", r.Event},
		{"CSIG_DECISION", "decision", r.Decision},
		{"CSIG_RULE", "rule", r.Rule},
		{"CSIG_POLICY", "policy", r.Policy},
		{"CSIG_EXEMPTION", "exemption", r.Exemption},
		{"CSIG_REVOCATION", "revocation", r.Revocation},
		{"CSIG_WITNESS", "witness", r.Witness},
		{"CSIG_MODE", "mode", r.Mode},
		{"CSIG_NAMESPACE", "namespace", r.Namespace},
		{"CSIG_POD", "pod", r.Pod},
		{"CSIG_CONTAINER", "container", r.Container},
		{"CSIG_CONTAINER_ID", "container_id", r.ContainerID},
		{"CSIG_IMAGE", "image", r.Image},
		{"CSIG_DIGEST", "digest", r.Digest},
		{"CSIG_CONFIG_DIGEST", "config_digest", r.ConfigDigest},
		{"CSIG_REASON", "reason", r.Reason},
		{"CSIG_CONTAINERD_NAMESPACE", "containerd_namespace", r.CtrdNamespace},
		{"CSIG_DURATION_MS", "duration_ms", dur},
		{"CSIG_BUNDLE_SERIAL", "bundle_serial", serial},
	}
}

// fields returns the record as journald variables (upper case, CSIG_ prefix).
func (r Record) fields() map[string]string {
	f := make(map[string]string, nfields)
	for _, fl := range r.table() {
		if fl.value != "" {
			f[fl.journald] = fl.value
		}
	}
	return f
}

// Message is the human line of a record (journald's MESSAGE).
func (r Record) Message() string { return string(r.appendMessage(make([]byte, 0, 256))) }

func (r Record) appendMessage(b []byte) []byte {
	b = append(b, r.Event...)
	b = append(b, ' ')
	b = append(b, r.Decision...)
	if r.Namespace != "" || r.Pod != "" {
		b = append(b, ' ')
		b = append(b, r.Namespace...)
		b = append(b, '/')
		b = append(b, r.Pod...)
	}
	if r.Container != "" {
		b = append(b, " container "...)
		b = strconv.AppendQuote(b, r.Container)
	}
	if r.Image != "" {
		b = append(b, " image "...)
		b = append(b, r.Image...)
	}
	if r.Digest != "" {
		b = append(b, " ("...)
		b = append(b, r.Digest...)
		b = append(b, ')')
	}
	if r.Rule != "" {
		b = append(b, " by "...)
		b = append(b, r.Rule...)
		for _, name := range [...]string{r.Policy, r.Exemption, r.Revocation} {
			if name != "" {
				b = append(b, '/')
				b = append(b, name...)
				break
			}
		}
	}
	if r.Reason != "" {
		b = append(b, ": "...)
		b = append(b, r.Reason...)
	}
	return b
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
	// socket is journald's native socket; empty means the system's.
	socket string
}

// journalSocket is where journald listens for native-protocol datagrams.
const journalSocket = "/run/systemd/journal/socket"

// Write implements Sink. The record is encoded once, straight into a
// pooled buffer in journald's native protocol, and sent as one datagram;
// when that fails (a record too large for a datagram, a socket gone),
// go-systemd's journal.Send, which can pass large records through a file,
// gets it, then the Fallback.
func (j Journald) Write(r Record) {
	bp := journalBufs.Get().(*[]byte)
	buf := r.appendJournal((*bp)[:0])
	err := sendDatagram(j.socketPath(), buf)
	*bp = buf
	journalBufs.Put(bp)
	if err == nil {
		return
	}
	vars := r.fields()
	vars["SYSLOG_IDENTIFIER"] = "nri-csig"
	if j.socket == "" {
		err = journal.Send(r.Message(), r.priority(), vars)
	}
	if err != nil && j.Fallback != nil {
		j.Fallback.Write(r)
	}
}

func (j Journald) socketPath() string {
	if j.socket != "" {
		return j.socket
	}
	return journalSocket
}

// appendJournal appends the record in journald's native protocol: one
// "KEY=value\n" line per field, or, for a value with a newline,
// "KEY\n" + its length (64-bit little endian) + value + "\n".
func (r Record) appendJournal(b []byte) []byte {
	// MESSAGE is always length-framed: it is written in place, and the
	// reason in it may hold a newline.
	b = append(b, "MESSAGE\n"...)
	at := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	b = r.appendMessage(b)
	binary.LittleEndian.PutUint64(b[at:], uint64(len(b)-at-8))
	b = append(b, '\n')
	b = append(b, "PRIORITY="...)
	b = strconv.AppendInt(b, int64(r.priority()), 10)
	b = append(b, "\nSYSLOG_IDENTIFIER=nri-csig\n"...)
	for _, fl := range r.table() {
		if fl.value != "" {
			b = appendJournalField(b, fl.journald, fl.value)
		}
	}
	return b
}

func appendJournalField(b []byte, key, value string) []byte {
	b = append(b, key...)
	if strings.IndexByte(value, '\n') < 0 {
		b = append(b, '=')
		b = append(b, value...)
		return append(b, '\n')
	}
	b = append(b, '\n')
	b = binary.LittleEndian.AppendUint64(b, uint64(len(value)))
	b = append(b, value...)
	return append(b, '\n')
}

var journalBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// journalConns holds one unbound datagram socket per journald socket path.
var journalConns sync.Map // path -> *journalConn

type journalConn struct {
	conn *net.UnixConn
	addr *net.UnixAddr
}

func sendDatagram(path string, data []byte) error {
	c, ok := journalConns.Load(path)
	if !ok {
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram"})
		if err != nil {
			return err
		}
		jc := &journalConn{conn: conn, addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
		if c, ok = journalConns.LoadOrStore(path, jc); ok {
			conn.Close() // another writer got there first
		}
	}
	jc := c.(*journalConn)
	_, err := jc.conn.WriteToUnix(data, jc.addr)
	return err
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
	for _, fl := range r.table() {
		if fl.value != "" {
			attrs = append(attrs, slog.String(fl.json, fl.value))
		}
	}
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
