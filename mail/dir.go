package mail

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// Dir "sends" by writing each message as an RFC 5322 .eml file into a directory, for
// development: open the file with any mail client, or read it. A name is the time of
// writing and the key (<20261202T070338Z>-<key slug>-<key hash>.eml), so `ls` lists the
// emails in order and shows what each is about. A key that was written before is not
// written again, so Send is idempotent per key, across goroutines and processes sharing the
// directory.
type Dir struct {
	path string
	log  *slog.Logger
	now  func() time.Time
	mu   sync.Mutex // flock locks per open file; this keeps goroutines from even trying at once
}

// NewDir creates the directory (owner-only: emails carry names and addresses) if needed.
func NewDir(path string, log *slog.Logger) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("mail dir: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Dir{path: path, log: log, now: time.Now}, nil
}

// Path is the directory the emails go to.
func (d *Dir) Path() string { return d.path }

// Send writes m to a new file, atomically (a temporary file renamed into place), unless a
// file for m.Key exists already. It logs the path, never the recipient's address.
func (d *Dir) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := d.now()
	g, err := m.render(now)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Another process (a second dev instance on the same data dir) may write the same key.
	lock := flock.New(filepath.Join(d.path, ".lock"))
	if _, err := lock.TryLockContext(ctx, 10*time.Millisecond); err != nil {
		return fmt.Errorf("mail %s: lock %s: %w", m.Key, d.path, err)
	}
	defer lock.Unlock()

	suffix := "-" + slug(m.Key) + ".eml"
	// The slug holds only [a-z0-9_-], so it is no glob pattern.
	old, err := filepath.Glob(filepath.Join(d.path, "*"+suffix))
	if err != nil {
		return fmt.Errorf("mail %s: %w", m.Key, err)
	}
	if len(old) > 0 {
		d.log.InfoContext(ctx, "mail already written", "key", m.Key, "path", old[0])
		return nil
	}

	tmp, err := os.CreateTemp(d.path, ".tmp-*.eml")
	if err != nil {
		return fmt.Errorf("mail %s: %w", m.Key, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	w := bufio.NewWriter(tmp)
	_, err = g.WriteTo(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("mail %s: write %s: %w", m.Key, tmp.Name(), err)
	}
	name := filepath.Join(d.path, now.UTC().Format("20060102T150405Z")+suffix)
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("mail %s: %w", m.Key, err)
	}
	d.log.InfoContext(ctx, "mail written", "key", m.Key, "subject", m.Subject, "path", name)
	return nil
}

// slug is a readable, file-name-safe form of key (at most 60 characters) followed by its
// hash, so two keys that read the same once cleaned ("a/b", "a.b") still get two files.
func slug(key string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(key) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
			under = false
		} else if !under {
			b.WriteByte('_')
			under = true
		}
		if b.Len() >= 60 {
			break
		}
	}
	return strings.Trim(b.String(), "_") + "-" + keyHash(key)[:13]
}
