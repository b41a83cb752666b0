package e2e

import "encoding/json"

var (
	jsonMarshal   = json.Marshal
	jsonUnmarshal = json.Unmarshal
)
