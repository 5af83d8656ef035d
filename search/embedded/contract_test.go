package embedded

import (
	"testing"

	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/search/searchtest"
)

func TestContract(t *testing.T) {
	searchtest.Run(t, func(t *testing.T) search.Index {
		ix, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ix.Close() })
		return ix
	})
}
