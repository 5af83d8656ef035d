package embedded

import (
	"os"
	"sync"
	"testing"
)

var (
	tempMu   sync.Mutex
	tempDirs []string
)

// mkdirTemp makes a directory removed when the test binary ends (for indexes shared by
// several tests and benchmarks).
func mkdirTemp() (string, error) {
	dir, err := os.MkdirTemp("", "bookstore-search-test-*")
	if err != nil {
		return "", err
	}
	tempMu.Lock()
	tempDirs = append(tempDirs, dir)
	tempMu.Unlock()
	return dir, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if relData != nil {
		relData.ix.Close()
	}
	if benchIx != nil {
		benchIx.Close()
	}
	for _, d := range tempDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}
