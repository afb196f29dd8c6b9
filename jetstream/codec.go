package jetstream

import (
	"encoding/json"
	"errors"
)

// ErrCodec is wrapped by every error of encoding or decoding a job's input
// or output: at submission (the Result fails at once), on the worker (the
// job fails without being retried: the input cannot get better), and at the
// submitter when it decodes the output.
var ErrCodec = errors.New("jetstream: codec")

// Codec turns a job's input and output into message payloads and back.
// Implementations must be safe for concurrent use.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default Codec: encoding/json.
//
// Cost: that of encoding/json, about 1 µs and a few allocations for a small
// struct each way.
type JSON struct{}

// Marshal is json.Marshal.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal is json.Unmarshal.
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
