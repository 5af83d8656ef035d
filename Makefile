# The bookstore's entry points. `make run` and `make test` install what they need
# (PostgreSQL, Redis, Node.js for the GraphQL-over-HTTP audit) on Debian/Ubuntu when it is
# missing, start it privately on loopback, and stop it afterwards.
GO ?= go
BIN := bin/bookstore

.PHONY: run test bench build generate check deps-run deps-test

## run: start the whole bookstore: private PostgreSQL, demo catalog, GraphQL + GraphiQL on :8080
run: deps-run
	$(GO) run ./cmd/bookstore dev

## test: every test, against a real PostgreSQL, Redis and stripe-mock started for the run
test: deps-test check
	$(GO) run ./cmd/testenv -- $(GO) test -race -count=1 -timeout 20m ./...

## bench: open-loop load on the browse queries over 10,000 books; prints a table
bench: deps-run build
	$(GO) run ./cmd/bench $(BENCH_FLAGS)

build:
	$(GO) build -o $(BIN) ./cmd/bookstore

## generate: regenerate graph/ from schema.graphqls
generate:
	$(GO) generate ./...

## check: formatting and vet
check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

deps-run:
	@scripts/ensure-deps.sh postgresql

deps-test:
	@scripts/ensure-deps.sh postgresql redis node
