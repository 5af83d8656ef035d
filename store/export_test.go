package store

import "context"

// MigrateTo applies the migrations up to and including version (tests of a migration on
// a database populated by the ones before it).
func (db *DB) MigrateTo(ctx context.Context, version int64) error {
	p, sqlDB, err := db.provider()
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	_, err = p.UpTo(ctx, version)
	return err
}
