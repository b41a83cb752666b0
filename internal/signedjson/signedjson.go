// Package signedjson lets a signed JSON document be verified over the exact
// bytes its signer produced, not over a re-encoding by the verifier's own
// struct: a document written by a newer version (with fields this one does
// not know) keeps verifying, and a change of encoding never invalidates
// documents already issued.
//
// A signer signs domain + the compact JSON object with the signature member
// blanked (encoding/json's output for the struct with an empty signature,
// as cbnode's v1 documents do), or left out. A verifier that kept the
// object as received rebuilds exactly that byte string with Without: the
// same members in the same order, the signature's value replaced by "" (or
// the member dropped).
//
//	signedjson.go  Without, Compact, Equal
package signedjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
)

// MaxSize bounds what Without parses.
const MaxSize = 1 << 20

// Without returns the JSON object obj, compacted, with the value of member
// name (at the top level) replaced by "" — or the member removed if drop —
// and the other members in their order with their exact bytes. It fails on
// anything but one well-formed JSON object, and on an object that repeats
// a member name.
func Without(obj []byte, name string, drop bool) ([]byte, error) {
	if len(obj) > MaxSize {
		return nil, fmt.Errorf("signed JSON: %d bytes, limit %d", len(obj), MaxSize)
	}
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, errors.New("signed JSON: not an object")
	}
	var out bytes.Buffer
	out.WriteByte('{')
	seen := map[string]bool{}
	first := true
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("signed JSON: %w", err)
		}
		key, ok := kt.(string)
		if !ok {
			return nil, errors.New("signed JSON: bad member name")
		}
		if seen[key] {
			return nil, fmt.Errorf("signed JSON: member %q twice", key)
		}
		seen[key] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("signed JSON: member %q: %w", key, err)
		}
		if key == name && drop {
			continue
		}
		if !first {
			out.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(key)
		out.Write(kb)
		out.WriteByte(':')
		if key == name {
			out.WriteString(`""`)
			continue
		}
		if err := json.Compact(&out, val); err != nil {
			return nil, fmt.Errorf("signed JSON: member %q: %w", key, err)
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errors.New("signed JSON: unterminated object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("signed JSON: trailing data after the object")
	}
	out.WriteByte('}')
	return out.Bytes(), nil
}

// Compact returns b compacted (a copy).
func Compact(b []byte) ([]byte, error) {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Equal reports whether decoding raw into a fresh *T yields a value deeply
// equal to v: whether v's fields still say what the raw document says (no
// field was edited after decoding). T must not implement json.Unmarshaler
// (use an alias type).
func Equal[T any](raw []byte, v *T) bool {
	var fresh T
	if json.Unmarshal(raw, &fresh) != nil {
		return false
	}
	return reflect.DeepEqual(&fresh, v)
}
