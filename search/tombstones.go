package search

import (
	"sync"
	"time"

	"github.com/google/uuid"
)

// TombstoneRetention is how long an engine remembers a delete's version: long enough
// for a rebuild or a replay that read a book before its delete to write it, bounded so
// that memory does not grow with every book ever deleted.
const TombstoneRetention = time.Hour

// Tombstones remembers, for a while, the version of each deleted document, so that a
// document not newer than the delete (read before it) cannot bring the book back.
// Both engines keep them in memory: a restart forgets them, as it forgets a writer in
// flight. The zero value is ready; it is safe for concurrent use.
type Tombstones struct {
	mu sync.Mutex
	m  map[uuid.UUID]tombstone
}

type tombstone struct {
	version int64
	at      time.Time
}

// Add records the delete of id at version (0: unversioned, nothing to remember).
func (t *Tombstones) Add(id uuid.UUID, version int64) {
	if version == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if t.m == nil {
		t.m = map[uuid.UUID]tombstone{}
	}
	if len(t.m) >= 1024 && len(t.m)%1024 == 0 {
		for k, v := range t.m {
			if now.Sub(v.at) > TombstoneRetention {
				delete(t.m, k)
			}
		}
	}
	if old, ok := t.m[id]; !ok || old.version < version {
		t.m[id] = tombstone{version: version, at: now}
	}
}

// Buries reports whether a document of version v of id must not be written: a delete
// of a version at least v is remembered. An unversioned document (0) always writes.
func (t *Tombstones) Buries(id uuid.UUID, v int64) bool {
	if v == 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	ts, ok := t.m[id]
	if !ok {
		return false
	}
	if time.Since(ts.at) > TombstoneRetention {
		delete(t.m, id)
		return false
	}
	return v <= ts.version
}
