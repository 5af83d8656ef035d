// Package keylist parses the key-list format of the bookstore's key variables (JWT_KEYS,
// PII_MASTER_KEYS): comma-separated "kid:base64" entries, the first one active. Errors
// name an entry by position or id, never by its key material.
package keylist

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Entry is one key of a list.
type Entry struct {
	ID  string
	Key []byte
}

// Parse reads a key list; empty entries are skipped, and a list with no key is an error.
func Parse(s string) ([]Entry, error) {
	var out []Entry
	for i, raw := range strings.Split(s, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		id, b64, ok := strings.Cut(raw, ":")
		if !ok {
			return nil, fmt.Errorf("entry %d: want kid:base64", i+1)
		}
		id = strings.TrimSpace(id)
		key, err := DecodeBase64(strings.TrimSpace(b64))
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", id, err)
		}
		out = append(out, Entry{ID: id, Key: key})
	}
	if len(out) == 0 {
		return nil, errors.New("no key configured")
	}
	return out, nil
}

// DecodeBase64 decodes key material in any of the four common base64 alphabets and
// paddings, so that keys made by other tools are accepted as they are.
func DecodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not valid base64")
}
