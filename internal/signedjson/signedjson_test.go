package signedjson

import (
	"encoding/json"
	"testing"
)

func TestWithout(t *testing.T) {
	for _, tc := range []struct {
		in, blank, drop string
	}{
		{`{"a":1,"signature":"xx","b":[1, 2]}`, `{"a":1,"signature":"","b":[1,2]}`, `{"a":1,"b":[1,2]}`},
		{`{ "b" : {"x": "y"} , "a":true }`, `{"b":{"x":"y"},"a":true}`, `{"b":{"x":"y"},"a":true}`},
		{`{}`, `{}`, `{}`},
	} {
		got, err := Without([]byte(tc.in), "signature", false)
		if err != nil || string(got) != tc.blank {
			t.Errorf("Without(%s) = %s, %v; want %s", tc.in, got, err, tc.blank)
		}
		got, err = Without([]byte(tc.in), "signature", true)
		if err != nil || string(got) != tc.drop {
			t.Errorf("Without(%s, drop) = %s, %v; want %s", tc.in, got, err, tc.drop)
		}
	}
	for _, bad := range []string{``, `[]`, `{"a":1,"a":2}`, `{"a":1} {}`, `{"a":}`, `"x"`} {
		if _, err := Without([]byte(bad), "signature", false); err == nil {
			t.Errorf("Without(%q) accepted it", bad)
		}
	}
}

// FuzzWithout: never panics; what it returns is a JSON object whose
// members are the input's less the signature's value.
func FuzzWithout(f *testing.F) {
	f.Add([]byte(`{"a":1,"signature":"xx","b":[1, 2]}`))
	f.Add([]byte(`{"signature":{"nested":"x"}}`))
	f.Add([]byte(`{"\u0073ignature":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := Without(b, "signature", true)
		if err != nil {
			return
		}
		var in, got map[string]json.RawMessage
		if err := json.Unmarshal(b, &in); err != nil {
			t.Fatalf("accepted what encoding/json refuses: %v", err)
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("output %q is no JSON object: %v", out, err)
		}
		delete(in, "signature")
		if len(in) != len(got) {
			t.Fatalf("members %d, want %d", len(got), len(in))
		}
	})
}
