// Package resolvers implements the GraphQL schema: each resolver authorizes, validates its
// arguments, calls a loader or store method, and returns domain types that gqlgen
// serializes. Errors are mapped to stable codes in one place (ErrorPresenter).
package resolvers

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/shopfront/bookstore/cart"
	"github.com/shopfront/bookstore/checkout"
	"github.com/shopfront/bookstore/events"
	"github.com/shopfront/bookstore/identity"
	"github.com/shopfront/bookstore/loaders"
	"github.com/shopfront/bookstore/orders"
	"github.com/shopfront/bookstore/search"
	"github.com/shopfront/bookstore/store"
)

// Resolver holds the dependencies of every resolver. It is built once in main.
type Resolver struct {
	DB       *store.DB
	Log      *slog.Logger
	Counts   *loaders.CountCache
	Identity *identity.Service
	// Index answers search and suggest.
	Index search.Index
	// Carts runs the cart use cases.
	Carts *cart.Service
	// Checkout places orders and shows them to their owners.
	Checkouts *checkout.Service
	// Orders runs what follows checkout: lists, cancellations, shipping.
	OrderService *orders.Service
	// Feed wakes order subscriptions when their order has new events; nil: the
	// subscription answers UNAVAILABLE.
	Feed *events.OrderFeed
	// Streams admits subscriptions (limits per connection and per customer); nil: no
	// limit.
	Streams StreamGate

	searchGhosts atomic.Int64
	ghostQueued  sync.Map // book id -> time.Time its deletion was last queued
}

// SearchGhosts returns how many search hits named a book missing from the database (the
// index's drift; each is queued for deletion from the index).
func (r *Resolver) SearchGhosts() int64 { return r.searchGhosts.Load() }
