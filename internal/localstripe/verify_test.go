package localstripe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerify: a cached file is used only when it is a whole Go binary built from the
// pinned stripe-mock: a half-written copy (an interrupted install, a full disk) or
// another program is rebuilt instead.
func TestVerify(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "none"), "no such file"},
		{"truncated", write("truncated", whole[:len(whole)/3], 0o755), "not a complete Go binary"},
		{"not executable", write("noexec", whole, 0o644), "not an executable"},
		{"another program", write("other", whole, 0o755), "want " + module + "@" + Version},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := verify(c.path); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("verify = %v, want an error saying %q", err, c.want)
			}
		})
	}
	if cache, err := os.UserCacheDir(); err == nil {
		bin := filepath.Join(cache, "bookstore", "stripe-mock", Version, "stripe-mock")
		if _, err := os.Stat(bin); err == nil {
			if err := verify(bin); err != nil {
				t.Fatalf("the cached stripe-mock that the tests run: %v", err)
			}
		}
	}
}
