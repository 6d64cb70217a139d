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
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

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

// JSON writes records as JSON lines, one Write per record, shaped like the
// lines of the daemon's log (slog's JSON handler: time, level, msg, the log's
// own attributes), with "audit":true and the journald field names in lower
// case (decision, namespace, ...), in a fixed order. It encodes straight into
// a pooled buffer: through slog, a record cost about as much CPU as the rest
// of the plugin's work on a container (BenchmarkContainer in pkg/plugin).
type JSON struct {
	out  io.Writer
	head string // the log's own attributes, encoded: `,"component":"nri-csig"`
}

// NewJSON returns a sink that writes to out, adding attrs (key, value, key,
// value, ...) to every line after the message, as slog's Logger.With does.
// out must not interleave concurrent writes: give the log's handler and this
// sink the same LockedWriter.
func NewJSON(out io.Writer, attrs ...string) JSON {
	var head []byte
	for i := 0; i+1 < len(attrs); i += 2 {
		head = appendJSONField(head, attrs[i], attrs[i+1])
	}
	return JSON{out: out, head: string(head)}
}

// Write implements Sink.
func (s JSON) Write(r Record) {
	bp := jsonBufs.Get().(*[]byte)
	b := r.appendJSON((*bp)[:0], time.Now(), s.head)
	_, _ = s.out.Write(b) // like slog: a log that cannot be written has nowhere to say so
	*bp = b
	jsonBufs.Put(bp)
}

var jsonBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// appendJSON appends the record as one JSON line.
func (r *Record) appendJSON(b []byte, now time.Time, head string) []byte {
	level := "INFO"
	if r.priority() == journal.PriWarning {
		level = "WARN"
	}
	b = append(b, `{"time":"`...)
	b = now.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"`...)
	b = append(b, level...)
	b = append(b, `","msg":"`...)
	b = appendJSONString(b, r.Event)
	b = append(b, '"')
	b = append(b, head...)
	b = append(b, `,"audit":true`...)
	for _, fl := range r.table() {
		if fl.value != "" {
			b = appendJSONField(b, fl.json, fl.value)
		}
	}
	return append(b, "}\n"...)
}

// appendJSONField appends `,"key":"value"`.
func appendJSONField(b []byte, key, value string) []byte {
	b = append(b, `,"`...)
	b = appendJSONString(b, key)
	b = append(b, `":"`...)
	b = appendJSONString(b, value)
	return append(b, '"')
}

// appendJSONString appends s escaped for a JSON string as slog and
// encoding/json escape it: quotes, backslashes and control characters, U+2028
// and U+2029; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(b, s[start:]...)
}

// Log sends records through a slog logger, as the attributes of one log
// line: for embedding the plugin where only a logger exists. The daemon
// uses JSON, which writes the same lines for a fraction of the CPU.
type Log struct{ Log *slog.Logger }

// Write implements Sink.
func (s Log) Write(r Record) {
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

// LockedWriter serializes writes to W, so that the log's handler and the
// JSON sink, writing to the same file, never interleave their lines.
type LockedWriter struct {
	mu sync.Mutex
	W  io.Writer
}

// Write implements io.Writer.
func (w *LockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.W.Write(b)
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

// Open picks the sink: "journald", "json" (js, the log's JSON lines), or
// "auto": journald when its socket is there, JSON lines otherwise.
func Open(kind string, js JSON) (Sink, error) {
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
