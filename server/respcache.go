package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/go-redis/cache/v9"
	"github.com/redis/go-redis/v9"
	"github.com/vektah/gqlparser/v2/ast"
)

// ResponseCache serves repeated anonymous catalog queries from memory (and Redis, when
// configured, so that every instance shares it) instead of executing them again.
//
// Why: executing a 20-book category page costs milliseconds of CPU in gqlgen and the
// database; the same page requested again within seconds has the same answer. Only
// queries (never mutations or subscriptions) from requests without credentials are
// cached, only responses without errors, and only for TTL: the catalog a shopper browses
// may be up to TTL old, while everything that must be exact (a customer's cart, prices
// at checkout) is either personal, and so not cached, or re-read from the database.
// Concurrent misses of one key execute once (singleflight), so an expired hot page
// cannot stampede the database.
//
// Catalog changes move the cache to a new generation of keys (Advance, called through
// the outbox relay and events.CatalogBroadcast): a changed price is not served from the
// cache once its event has been relayed, rather than up to TTL later.
type ResponseCache struct {
	c   *cache.Cache
	ttl time.Duration
	gen atomic.Uint64
}

// Advance moves the cache to catalog generation gen (events.CatalogBroadcast numbers
// them; instances sharing Redis agree on the number, and so on the keys of current
// entries). An older generation is ignored.
func (rc *ResponseCache) Advance(gen uint64) {
	for {
		cur := rc.gen.Load()
		if gen <= cur || rc.gen.CompareAndSwap(cur, gen) {
			return
		}
	}
}

// NewResponseCache keeps up to entries responses in process for ttl; rdb, if not nil,
// adds Redis as a shared second level.
func NewResponseCache(entries int, ttl time.Duration, rdb *redis.Client) *ResponseCache {
	opts := &cache.Options{
		LocalCache: cache.NewTinyLFU(entries, ttl),
		// Values are JSON bytes already: store them as they are.
		Marshal: func(v any) ([]byte, error) { return v.([]byte), nil },
		Unmarshal: func(b []byte, v any) error {
			*v.(*[]byte) = b
			return nil
		},
	}
	if rdb != nil {
		opts.Redis = rdb
	}
	return &ResponseCache{c: cache.New(opts), ttl: ttl}
}

var (
	_ graphql.HandlerExtension    = (*ResponseCache)(nil)
	_ graphql.ResponseInterceptor = (*ResponseCache)(nil)
)

// ExtensionName implements graphql.HandlerExtension.
func (*ResponseCache) ExtensionName() string { return "ResponseCache" }

// Validate implements graphql.HandlerExtension.
func (*ResponseCache) Validate(graphql.ExecutableSchema) error { return nil }

// cachedResponse is what is stored: the data of an error-free response.
type cachedResponse struct {
	Data json.RawMessage `json:"d"`
}

var errNotCacheable = errors.New("response not cacheable")

// InterceptResponse implements graphql.ResponseInterceptor.
func (rc *ResponseCache) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	if !graphql.HasOperationContext(ctx) {
		return next(ctx)
	}
	oc := graphql.GetOperationContext(ctx)
	if !Public(oc.Operation) || oc.Headers.Get("Authorization") != "" || oc.Headers.Get("Cookie") != "" {
		return next(ctx)
	}
	key, err := responseKey(oc, rc.gen.Load())
	if err != nil {
		return next(ctx)
	}
	var resp *graphql.Response // set when this goroutine executed the operation
	var b []byte
	err = rc.c.Once(&cache.Item{
		Ctx:   ctx,
		Key:   key,
		Value: &b,
		TTL:   rc.ttl,
		Do: func(*cache.Item) (any, error) {
			resp = next(ctx)
			if resp == nil || len(resp.Errors) > 0 || resp.Data == nil {
				return nil, errNotCacheable
			}
			return json.Marshal(cachedResponse{Data: resp.Data})
		},
	})
	if resp != nil {
		return resp
	}
	if err != nil {
		// Another request with this key executed and failed, or the cache broke:
		// answer this one by executing it.
		return next(ctx)
	}
	var cr cachedResponse
	if err := json.Unmarshal(b, &cr); err != nil {
		return next(ctx)
	}
	return &graphql.Response{Data: cr.Data}
}

// publicFields are the root query fields whose answers are the same for everyone: the
// public catalog. An allowlist, so that a root field added later (a cart, a customer, an
// admin list) is personal until someone decides otherwise. node is not on it: it reaches
// any object type, a cart included.
var publicFields = map[string]bool{
	"books": true, "bestsellers": true, "newReleases": true, "book": true, "bookByIsbn": true,
	"categories": true, "category": true, "author": true, "search": true, "suggest": true,
	"__typename": true, "__schema": true, "__type": true,
}

// Public reports whether op is a query that selects only public catalog data (root
// fields of publicFields, through fragments too): only such answers may be cached, by
// the ResponseCache or by a browser or CDN. A cart id is a capability: an answer holding
// a cart must never be served to anyone else, nor be served stale.
func Public(op *ast.OperationDefinition) bool {
	return op != nil && op.Operation == ast.Query && publicSelection(op.SelectionSet, 0)
}

func publicSelection(set ast.SelectionSet, depth int) bool {
	if depth > 16 { // fragment cycles are refused by validation; stay bounded regardless
		return false
	}
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if !publicFields[s.Name] {
				return false
			}
		case *ast.InlineFragment:
			if !publicSelection(s.SelectionSet, depth+1) {
				return false
			}
		case *ast.FragmentSpread:
			if s.Definition == nil || !publicSelection(s.Definition.SelectionSet, depth+1) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// responseKey identifies an operation by its text, name and variables.
func responseKey(oc *graphql.OperationContext, gen uint64) (string, error) {
	vars, err := json.Marshal(oc.Variables) // map keys are sorted: a canonical form
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(oc.RawQuery))
	h.Write([]byte{0})
	h.Write([]byte(oc.OperationName))
	h.Write([]byte{0})
	h.Write(vars)
	return "bookstore:resp:v1:" + strconv.FormatUint(gen, 10) + ":" + hex.EncodeToString(h.Sum(nil)), nil
}
