package embedded

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/gofrs/flock"
	"github.com/google/uuid"

	"github.com/shopfront/bookstore/search"
)

// Live is the embedded engine as a server runs it: an Index in a generation directory
// under root, named by the file root/CURRENT, that Rebuild replaces with a freshly built
// generation. Searches go to the old generation until the new one is complete, then to
// the new one; no search ever sees a half-built index, and a crash during a rebuild
// leaves the old generation current (Open removes the unfinished one).
//
// Generations, rather than one directory rebuilt in place or renamed, because Bleve
// keeps files of its directory open and writes new segments by path: an index must stay
// at the path it was opened at until it is closed.
type Live struct {
	root string
	opts []Options
	lock *flock.Flock // the root's LOCK file, held until Close

	mu     sync.RWMutex // held for reading by every call on cur, for writing by the swap
	cur    *Index
	gen    string
	closed bool

	rebuildMu sync.Mutex // one rebuild at a time
}

var _ search.Rebuildable = (*Live)(nil)

const currentFile = "CURRENT"

var genRE = regexp.MustCompile(`^gen-[0-9a-f]{32}$`)

// OpenLive opens (or creates) the index under root. A root laid out by an older version
// (the Bleve files in root itself) is discarded: its Meta is then the zero Meta, and the
// caller rebuilds.
func OpenLive(root string, opts ...Options) (*Live, error) {
	if root == "" {
		return nil, errors.New("embedded search: empty directory name")
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("embedded search: %w", err)
	}
	// One process per root: a second one would wait forever on Bleve's bolt lock, and
	// before that remove the generation the first is rebuilding into.
	lock := flock.New(filepath.Join(root, lockFile))
	if ok, err := lock.TryLock(); err != nil {
		return nil, fmt.Errorf("embedded search: lock %s: %w", root, err)
	} else if !ok {
		return nil, fmt.Errorf("embedded search: %s: %w", root, ErrInUse)
	}
	l, err := openLive(root, lock, opts)
	if err != nil {
		lock.Unlock()
	}
	return l, err
}

// ErrInUse is returned by OpenLive for a root another process (or another Live of this
// one) holds open: stop the server before a reindex of its embedded index.
var ErrInUse = errors.New("index in use by another process")

const lockFile = "LOCK"

func openLive(root string, lock *flock.Flock, opts []Options) (*Live, error) {
	if _, err := os.Stat(filepath.Join(root, "index_meta.json")); err == nil {
		if err := removeIndex(root); err != nil {
			return nil, err
		}
	}
	gen := ""
	if b, err := os.ReadFile(filepath.Join(root, currentFile)); err == nil {
		gen = strings.TrimSpace(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("embedded search: %w", err)
	}
	if !genRE.MatchString(gen) {
		gen = newGen()
	}
	ix, err := Open(filepath.Join(root, gen), opts...)
	if err != nil {
		return nil, err
	}
	if err := writeCurrent(root, gen); err != nil {
		ix.Close()
		return nil, err
	}
	// Generations other than the current one are rebuilds that never finished.
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if e.IsDir() && genRE.MatchString(e.Name()) && e.Name() != gen {
			os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
	return &Live{root: root, opts: opts, cur: ix, gen: gen, lock: lock}, nil
}

func newGen() string {
	var b [16]byte
	rand.Read(b[:])
	return "gen-" + hex.EncodeToString(b[:])
}

// writeCurrent points root/CURRENT at gen, atomically (write, sync, rename, sync dir).
func writeCurrent(root, gen string) error {
	tmp := filepath.Join(root, currentFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("embedded search: %w", err)
	}
	_, err = f.WriteString(gen + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(root, currentFile))
	}
	if err != nil {
		return fmt.Errorf("embedded search: switch generation: %w", err)
	}
	if d, err := os.Open(root); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// current returns the live generation with mu held for reading; call the returned
// function when done with it.
func (l *Live) current() (*Index, func()) {
	l.mu.RLock()
	return l.cur, l.mu.RUnlock
}

// Upsert implements search.Index.
func (l *Live) Upsert(ctx context.Context, docs []search.Document) error {
	ix, done := l.current()
	defer done()
	return ix.Upsert(ctx, docs)
}

// Delete implements search.Index.
func (l *Live) Delete(ctx context.Context, ids []uuid.UUID) error {
	ix, done := l.current()
	defer done()
	return ix.Delete(ctx, ids)
}

// Search implements search.Index.
func (l *Live) Search(ctx context.Context, q search.Query) (search.Result, error) {
	ix, done := l.current()
	defer done()
	return ix.Search(ctx, q)
}

// Suggest implements search.Index.
func (l *Live) Suggest(ctx context.Context, prefix string, n int) ([]search.Suggestion, error) {
	ix, done := l.current()
	defer done()
	return ix.Suggest(ctx, prefix, n)
}

// Count implements search.Index.
func (l *Live) Count(ctx context.Context) (int, error) {
	ix, done := l.current()
	defer done()
	return ix.Count(ctx)
}

// Meta implements search.Rebuildable.
func (l *Live) Meta(ctx context.Context) (search.Meta, error) {
	ix, done := l.current()
	defer done()
	return ix.Meta(ctx)
}

// SetMeta implements search.Rebuildable.
func (l *Live) SetMeta(ctx context.Context, m search.Meta) error {
	ix, done := l.current()
	defer done()
	return ix.SetMeta(ctx, m)
}

// Rebuild implements search.Rebuildable: fill writes into a new generation, which
// replaces the current one once it is complete and merged into one segment.
func (l *Live) Rebuild(ctx context.Context, m search.Meta, fill func(w search.Writer) error) error {
	l.rebuildMu.Lock()
	defer l.rebuildMu.Unlock()
	gen := newGen()
	dir := filepath.Join(l.root, gen)
	fresh, err := Open(dir, l.opts...)
	if err != nil {
		return err
	}
	abandon := func(err error) error {
		fresh.Close()
		os.RemoveAll(dir)
		return err
	}
	if err := fill(fresh); err != nil {
		return abandon(err)
	}
	if err := fresh.SetMeta(ctx, m); err != nil {
		return abandon(err)
	}
	if err := fresh.Optimize(ctx); err != nil {
		return abandon(fmt.Errorf("embedded search: merge the new index: %w", err))
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return abandon(search.ErrClosed)
	}
	if err := writeCurrent(l.root, gen); err != nil {
		l.mu.Unlock()
		return abandon(err)
	}
	old, oldGen := l.cur, l.gen
	l.cur, l.gen = fresh, gen
	l.mu.Unlock()
	old.Close()
	os.RemoveAll(filepath.Join(l.root, oldGen))
	return nil
}

// Close implements search.Index. It waits for calls in progress.
func (l *Live) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	err := l.cur.Close()
	if uerr := l.lock.Unlock(); err == nil {
		err = uerr
	}
	return err
}
