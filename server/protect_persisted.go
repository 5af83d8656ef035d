package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// LoadPersistedQueries reads a persisted-query manifest: a JSON object mapping the
// sha256 (hex) of each operation's text to the text, as client build tools extract it.
// Every hash is checked against its text, so a stale or hand-edited manifest fails at
// start-up rather than answering PERSISTED_QUERY_NOT_FOUND to the clients built with it.
func LoadPersistedQueries(path string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("persisted queries: %w", err)
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("persisted queries %s: want a JSON object of sha256 hex -> query text: %w", path, err)
	}
	out := make(map[string]string, len(m))
	for hash, query := range m {
		sum := sha256.Sum256([]byte(query))
		if want := hex.EncodeToString(sum[:]); strings.ToLower(hash) != want {
			return nil, fmt.Errorf("persisted queries %s: %.16s... is not the sha256 of its query (that is %.16s...)", path, hash, want)
		}
		out[strings.ToLower(hash)] = query
	}
	return out, nil
}
