package kritis

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Group is the API group of the kritis objects read here.
const Group = "kritis.grafeas.io"

// MaxObjects bounds how many objects one import reads.
const MaxObjects = 10000

// AttestationAuthority is a kritis signer: a KMS key's public half.
type AttestationAuthority struct {
	Name          string
	NoteReference string // "namespaces/<name>"
	PublicKeyPEM  []byte // spec.publicKeyData decoded
	PublicKeyID   string // the KMS key id
	KeyErr        error  // why spec.publicKeyData holds no usable PEM; then PublicKeyPEM is nil
	Source        string // file:line, for messages
}

// GenericAttestationPolicy requires, in its namespace, signatures by every
// authority it names.
type GenericAttestationPolicy struct {
	Name        string
	Namespace   string
	Authorities []string
	// Patterns are upstream kritis's spec.admissionWhitelistPatterns.
	Patterns []string
	Source   string
}

// Pattern is one AdmissionAllowlist entry.
type Pattern struct {
	Allowlist   string // the AdmissionAllowlist's name, or "ns/policy" for a policy's own patterns
	NamePattern string
	Namespace   string // empty: every namespace
	Source      string
}

// Objects are the kritis objects of one or more files.
type Objects struct {
	Authorities []AttestationAuthority
	Policies    []GenericAttestationPolicy
	Patterns    []Pattern
	// Ignored names objects of other kinds that were skipped, e.g. a Pod in the list.
	Ignored []string
}

type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Spec  yaml.Node `yaml:"spec"`
	Items []object  `yaml:"items"`
	line  int
}

// Parse reads kritis objects from YAML: a kubectl List (kind List, items), one
// object, or several documents of either. file names the input in messages.
func (o *Objects) Parse(file string, data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		var obj object
		if err := n.Decode(&obj); err != nil {
			return fmt.Errorf("%s:%d: %w", file, n.Line, err)
		}
		obj.line = n.Line
		if err := o.add(file, obj); err != nil {
			return err
		}
	}
}

func (o *Objects) add(file string, obj object) error {
	if obj.Kind == "List" || (strings.HasSuffix(obj.Kind, "List") && len(obj.Items) > 0) {
		for _, it := range obj.Items {
			if it.line == 0 {
				it.line = obj.line
			}
			if err := o.add(file, it); err != nil {
				return err
			}
		}
		return nil
	}
	if len(o.Authorities)+len(o.Policies)+len(o.Patterns)+len(o.Ignored) >= MaxObjects {
		return fmt.Errorf("%s: more than %d objects; import them in parts", file, MaxObjects)
	}
	src := fmt.Sprintf("%s:%d", file, obj.Spec.Line)
	group, _, _ := strings.Cut(obj.APIVersion, "/")
	id := obj.Kind + " " + qualified(obj.Metadata.Namespace, obj.Metadata.Name)
	if group != Group {
		o.Ignored = append(o.Ignored, id+" ("+obj.APIVersion+")")
		return nil
	}
	if obj.Metadata.Name == "" {
		return fmt.Errorf("%s: %s without metadata.name", src, obj.Kind)
	}
	switch obj.Kind {
	case "AttestationAuthority":
		var spec struct {
			NoteReference string `yaml:"noteReference"`
			PublicKeyData string `yaml:"publicKeyData"`
			PublicKeyID   string `yaml:"publicKeyId"`
		}
		if err := obj.Spec.Decode(&spec); err != nil {
			return fmt.Errorf("%s: %s: %w", src, id, err)
		}
		// A bad key is this authority's problem, reported in the plan, not the import's.
		pemData, err := decodeKeyData(spec.PublicKeyData)
		o.Authorities = append(o.Authorities, AttestationAuthority{
			Name: obj.Metadata.Name, NoteReference: spec.NoteReference, PublicKeyPEM: pemData, PublicKeyID: spec.PublicKeyID, KeyErr: err, Source: src,
		})
	case "GenericAttestationPolicy":
		var spec struct {
			Authorities []string `yaml:"attestationAuthorityNames"`
			Patterns    []struct {
				NamePattern string `yaml:"namePattern"`
			} `yaml:"admissionWhitelistPatterns"`
		}
		if err := obj.Spec.Decode(&spec); err != nil {
			return fmt.Errorf("%s: %s: %w", src, id, err)
		}
		ns := obj.Metadata.Namespace
		if ns == "" {
			ns = "default" // kubectl omits nothing, but hand-written files may
		}
		p := GenericAttestationPolicy{Name: obj.Metadata.Name, Namespace: ns, Authorities: spec.Authorities, Source: src}
		for _, wp := range spec.Patterns {
			p.Patterns = append(p.Patterns, wp.NamePattern)
			o.Patterns = append(o.Patterns, Pattern{Allowlist: ns + "/" + obj.Metadata.Name, NamePattern: wp.NamePattern, Namespace: ns, Source: src})
		}
		o.Policies = append(o.Policies, p)
	case "AdmissionAllowlist":
		var spec struct {
			Patterns []struct {
				NamePattern string `yaml:"namePattern"`
				Namespace   string `yaml:"namespace"`
			} `yaml:"patterns"`
		}
		if err := obj.Spec.Decode(&spec); err != nil {
			return fmt.Errorf("%s: %s: %w", src, id, err)
		}
		for _, p := range spec.Patterns {
			o.Patterns = append(o.Patterns, Pattern{Allowlist: obj.Metadata.Name, NamePattern: p.NamePattern, Namespace: p.Namespace, Source: src})
		}
	default:
		o.Ignored = append(o.Ignored, id)
	}
	return nil
}

// decodeKeyData decodes publicKeyData: base64 of a PEM file, as the kritis
// docs write it ($(cat publickey.txt | base64 | tr -d '\n')). A PEM given as is
// is accepted too.
func decodeKeyData(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty: the AttestationAuthority holds no public key")
	}
	if strings.HasPrefix(s, "-----BEGIN") {
		return []byte(s), nil
	}
	b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return nil, fmt.Errorf("not base64 (want the base64 of the public key PEM): %w", err)
	}
	if !bytes.Contains(b, []byte("-----BEGIN")) {
		return nil, errors.New("the base64 does not hold a PEM public key")
	}
	return b, nil
}

func qualified(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}
