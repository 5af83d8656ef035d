package embedded

import (
	"testing"

	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/search/searchtest"
)

func TestContract(t *testing.T) {
	searchtest.Run(t, func(t *testing.T) search.Index {
		ix, err := OpenLive(t.TempDir()) // what the server runs: generations swapped by Rebuild
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ix.Close() })
		return ix
	})
}
