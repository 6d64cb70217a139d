package signature

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrMalformed marks bytes that are not a well-formed document of the
// expected kind (corrupt JSON, bad base64, missing fields, over a size cap).
var ErrMalformed = errors.New("malformed")

// maxJSONDepth bounds nesting in every document read here; none of the
// formats needs more than a handful of levels.
const maxJSONDepth = 16

// checkJSON rejects documents larger than limit, nested deeper than
// maxJSONDepth, with duplicate object keys (two parsers could disagree on
// which one counts) or with trailing data after the first value.
func checkJSON(b []byte, limit int) error {
	if len(b) > limit {
		return fmt.Errorf("%w: %d bytes, more than the %d accepted", ErrMalformed, len(b), limit)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type frame struct {
		object  bool
		keys    map[string]struct{}
		wantKey bool
	}
	var stack []*frame
	afterValue := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	first := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: invalid JSON: %v", ErrMalformed, err)
		}
		if !first && len(stack) == 0 {
			return fmt.Errorf("%w: trailing data after the JSON value", ErrMalformed)
		}
		first = false
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if len(stack) >= maxJSONDepth {
					return fmt.Errorf("%w: JSON nested deeper than %d levels", ErrMalformed, maxJSONDepth)
				}
				f := &frame{object: v == '{', wantKey: v == '{'}
				if f.object {
					f.keys = map[string]struct{}{}
				}
				stack = append(stack, f)
				continue
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
				f := stack[n-1]
				if _, dup := f.keys[v]; dup {
					return fmt.Errorf("%w: duplicate JSON key %q", ErrMalformed, v)
				}
				f.keys[v] = struct{}{}
				f.wantKey = false
				continue
			}
		}
		afterValue()
	}
	if first {
		return fmt.Errorf("%w: empty document", ErrMalformed)
	}
	if len(stack) > 0 {
		return fmt.Errorf("%w: invalid JSON: truncated", ErrMalformed)
	}
	return nil
}

// decodeStrict checks b with checkJSON, then decodes it into v refusing
// unknown fields.
func decodeStrict(b []byte, limit int, v any) error {
	if err := checkJSON(b, limit); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: invalid JSON: %v", ErrMalformed, err)
	}
	return nil
}

// decodeLoose is decodeStrict for documents whose producers add fields we do
// not read (OCI manifests, Sigstore bundles): unknown fields are ignored.
func decodeLoose(b []byte, limit int, v any) error {
	if err := checkJSON(b, limit); err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: invalid JSON: %v", ErrMalformed, err)
	}
	return nil
}
