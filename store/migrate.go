package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are forward-only: a deployed migration is never edited or rolled back; a
// mistake is fixed by a new migration. goose keeps the applied versions in
// goose_db_version.
func (db *DB) provider() (*goose.Provider, *sql.DB, error) {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, nil, err
	}
	sqlDB := stdlib.OpenDBFromPool(db.Pool)
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if !db.Cockroach {
		// Several instances may start at once; PostgreSQL advisory locks serialise their
		// migrations. CockroachDB has no advisory locks, but runs each migration in a
		// serializable transaction, so concurrent runs conflict and one retries.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			sqlDB.Close()
			return nil, nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, fsys, opts...)
	if err != nil {
		sqlDB.Close()
		return nil, nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, sqlDB, nil
}

// Migrate applies every pending migration and returns how many it applied.
func (db *DB) Migrate(ctx context.Context) (int, error) {
	p, sqlDB, err := db.provider()
	if err != nil {
		return 0, err
	}
	defer sqlDB.Close()
	res, err := p.Up(ctx)
	if err != nil {
		return len(res), fmt.Errorf("migrate: %w", err)
	}
	return len(res), nil
}

// Pending reports whether migrations remain to be applied (readiness checks use it).
func (db *DB) Pending(ctx context.Context) (bool, error) {
	p, sqlDB, err := db.provider()
	if err != nil {
		return false, err
	}
	defer sqlDB.Close()
	return p.HasPending(ctx)
}

// MigrationsFingerprint is a hash of every migration file, so that a copy of a migrated
// schema (the tests' template database) can tell whether it is current.
func MigrationsFingerprint() string {
	h := sha256.New()
	entries, _ := fs.ReadDir(migrationFiles, "migrations")
	for _, e := range entries {
		b, _ := fs.ReadFile(migrationFiles, "migrations/"+e.Name())
		h.Write([]byte(e.Name()))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}
