package identity_test

import (
	"testing"

	"github.com/shopfront/bookstore/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }
