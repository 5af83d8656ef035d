package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// RefreshTokens stores refresh tokens by their SHA-256 (package auth makes both), grouped
// in families, one per sign-in session. Every write runs in a SERIALIZABLE transaction
// through ExecuteTx, revocations included: a revocation at READ COMMITTED could miss the
// token that a concurrent rotation is inserting into the family.
type RefreshTokens struct{ db *DB }

// RefreshToken is a refresh_tokens row.
type RefreshToken struct {
	Hash            []byte
	FamilyID        uuid.UUID
	CustomerID      uuid.UUID
	ExpiresAt       time.Time // this token's end (idle timeout)
	FamilyExpiresAt time.Time // the session's absolute end
	UsedAt          *time.Time
	RevokedAt       *time.Time
	CreatedAt       time.Time
}

// Rotation outcomes other than success. The service maps all of them to UNAUTHENTICATED;
// they differ for logging and metrics.
var (
	// ErrRefreshNotFound: no such token (never issued, or purged).
	ErrRefreshNotFound = errors.New("refresh token not found")
	// ErrRefreshExpired: the token or its session timed out.
	ErrRefreshExpired = errors.New("refresh token expired")
	// ErrRefreshRevoked: the token's family was revoked (logout, password change, or an
	// earlier reuse) before this token was used.
	ErrRefreshRevoked = errors.New("refresh token revoked")
	// ErrRefreshReused: the token had already been used, so it was stolen or replayed; its
	// whole family has now been revoked.
	ErrRefreshReused = errors.New("refresh token reused: session revoked")
)

// ReuseError is the error of a rotation that found its token already used: it names the
// session that was revoked, for the security log. It matches ErrRefreshReused.
type ReuseError struct {
	FamilyID   uuid.UUID
	CustomerID uuid.UUID
}

func (e *ReuseError) Error() string { return ErrRefreshReused.Error() }

// Unwrap makes errors.Is(err, ErrRefreshReused) hold.
func (e *ReuseError) Unwrap() error { return ErrRefreshReused }

const refreshCols = `token_hash, family_id, customer_id, expires_at, family_expires_at, used_at, revoked_at, created_at`

func scanRefresh(row pgx.Row) (*RefreshToken, error) {
	var t RefreshToken
	if err := row.Scan(&t.Hash, &t.FamilyID, &t.CustomerID, &t.ExpiresAt, &t.FamilyExpiresAt, &t.UsedAt,
		&t.RevokedAt, &t.CreatedAt); err != nil {
		return nil, err
	}
	return &t, nil
}

const insertRefresh = `
INSERT INTO refresh_tokens (token_hash, family_id, customer_id, expires_at, family_expires_at)
VALUES ($1, $2, $3, $4, $5)
RETURNING created_at`

// Create stores the first token of a new family (a sign-in). t.ExpiresAt is capped at
// t.FamilyExpiresAt.
func (s *RefreshTokens) Create(ctx context.Context, t *RefreshToken) error {
	if len(t.Hash) != 32 || t.FamilyID == uuid.Nil || t.CustomerID == uuid.Nil {
		return errors.New("create refresh token: hash, family and customer are required")
	}
	if t.ExpiresAt.After(t.FamilyExpiresAt) {
		t.ExpiresAt = t.FamilyExpiresAt
	}
	err := s.db.Pool.QueryRow(ctx, insertRefresh, t.Hash, t.FamilyID, t.CustomerID, t.ExpiresAt, t.FamilyExpiresAt).
		Scan(&t.CreatedAt)
	if err != nil {
		return fmt.Errorf("create refresh token: %w", err)
	}
	return nil
}

// insertSession inserts the row only while the customer's password hash is the one the
// sign-in verified. It runs in a serializable transaction, like the password change that
// updates the hash and then revokes the customer's sessions: one of two racing ones is
// retried, so either the change sees (and revokes) the new session or the insert sees
// the new hash (and inserts nothing). A plain autocommit statement is not enough on
// PostgreSQL: the change's snapshot predates the insert's commit, and SSI tracks only
// serializable transactions.
const insertSession = `
INSERT INTO refresh_tokens (token_hash, family_id, customer_id, expires_at, family_expires_at)
SELECT $1::BYTEA, $2::UUID, id, $4::TIMESTAMPTZ, $5::TIMESTAMPTZ
FROM customers WHERE id = $3 AND password_hash = $6 FOR SHARE
RETURNING created_at`

// CreateSession is Create for a sign-in with a password: it stores the family's first
// token only if the customer's password hash is still passwordHash (the one verified),
// else it returns ErrPasswordChanged. Without the check, a login racing a password
// change would open a session the change never revoked.
func (s *RefreshTokens) CreateSession(ctx context.Context, t *RefreshToken, passwordHash string) error {
	if len(t.Hash) != 32 || t.FamilyID == uuid.Nil || t.CustomerID == uuid.Nil {
		return errors.New("create refresh token: hash, family and customer are required")
	}
	if t.ExpiresAt.After(t.FamilyExpiresAt) {
		t.ExpiresAt = t.FamilyExpiresAt
	}
	err := s.db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, insertSession, t.Hash, t.FamilyID, t.CustomerID, t.ExpiresAt, t.FamilyExpiresAt, passwordHash).
			Scan(&t.CreatedAt)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrPasswordChanged
	}
	if err != nil {
		return fmt.Errorf("create refresh token: %w", err)
	}
	return nil
}

// ByHash returns the token with hash, or ErrRefreshNotFound.
func (s *RefreshTokens) ByHash(ctx context.Context, hash []byte) (*RefreshToken, error) {
	t, err := scanRefresh(s.db.Pool.QueryRow(ctx, `SELECT `+refreshCols+` FROM refresh_tokens WHERE token_hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrRefreshNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("refresh token: %w", err)
	}
	return t, nil
}

// Family returns every token of a family, oldest first.
func (s *RefreshTokens) Family(ctx context.Context, familyID uuid.UUID) ([]*RefreshToken, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT `+refreshCols+` FROM refresh_tokens WHERE family_id = $1 ORDER BY created_at, token_hash`, familyID)
	if err != nil {
		return nil, fmt.Errorf("refresh family %s: %w", familyID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*RefreshToken, error) { return scanRefresh(row) })
	if err != nil {
		return nil, fmt.Errorf("refresh family %s: %w", familyID, err)
	}
	return out, nil
}

const (
	lockRefresh   = `SELECT ` + refreshCols + ` FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE`
	markUsed      = `UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1`
	revokeFamily  = `UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL`
	revokeByOwner = `UPDATE refresh_tokens SET revoked_at = $2 WHERE customer_id = $1 AND revoked_at IS NULL`
)

// Rotate spends the token oldHash and issues newHash in its place, in one serializable
// transaction: the old token is marked used and the new one inserted in the same family,
// expiring at now+ttl but never after the family does. It returns the new token.
//
// When the old token was already used (a replay: one of its two presenters is a thief)
// Rotate revokes the whole family, commits that, and returns a *ReuseError (which
// matches ErrRefreshReused); when its
// family was revoked it returns ErrRefreshRevoked; when it or its family has expired,
// ErrRefreshExpired; when it does not exist, ErrRefreshNotFound. Reuse is checked before
// expiry, so replaying an old, expired token still revokes the session.
//
// Of several concurrent Rotate calls with the same token exactly one succeeds; the others
// see it used and revoke the family, including the token the winner just issued.
func (s *RefreshTokens) Rotate(ctx context.Context, oldHash, newHash []byte, now time.Time, ttl time.Duration) (*RefreshToken, error) {
	if len(newHash) != 32 {
		return nil, errors.New("rotate refresh token: new hash must be 32 bytes")
	}
	var next *RefreshToken
	var outcome error
	err := s.db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		next, outcome = nil, nil // the closure may run several times
		old, err := scanRefresh(tx.QueryRow(ctx, lockRefresh, oldHash))
		if errors.Is(err, pgx.ErrNoRows) {
			outcome = ErrRefreshNotFound
			return nil
		}
		if err != nil {
			return err
		}
		if old.UsedAt != nil || old.RevokedAt != nil {
			// Revoke (again, harmlessly, if already revoked) and commit the revocation.
			if _, err := tx.Exec(ctx, revokeFamily, old.FamilyID, now); err != nil {
				return err
			}
			outcome = ErrRefreshRevoked
			if old.UsedAt != nil {
				outcome = &ReuseError{FamilyID: old.FamilyID, CustomerID: old.CustomerID}
			}
			return nil
		}
		if !now.Before(old.ExpiresAt) || !now.Before(old.FamilyExpiresAt) {
			outcome = ErrRefreshExpired
			return nil
		}
		if _, err := tx.Exec(ctx, markUsed, oldHash, now); err != nil {
			return err
		}
		n := &RefreshToken{Hash: newHash, FamilyID: old.FamilyID, CustomerID: old.CustomerID,
			ExpiresAt: now.Add(ttl), FamilyExpiresAt: old.FamilyExpiresAt}
		if n.ExpiresAt.After(n.FamilyExpiresAt) {
			n.ExpiresAt = n.FamilyExpiresAt
		}
		if err := tx.QueryRow(ctx, insertRefresh, n.Hash, n.FamilyID, n.CustomerID, n.ExpiresAt, n.FamilyExpiresAt).
			Scan(&n.CreatedAt); err != nil {
			return err
		}
		next = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rotate refresh token: %w", err)
	}
	if outcome != nil {
		return nil, outcome
	}
	return next, nil
}

// RevokeFamily revokes every token of a family (logout of one session) and returns how
// many were still live.
func (s *RefreshTokens) RevokeFamily(ctx context.Context, familyID uuid.UUID, now time.Time) (int64, error) {
	return s.revoke(ctx, revokeFamily, familyID, now)
}

// RevokeByHash revokes the family of the token with hash (logout with a refresh token)
// and returns the family; ErrRefreshNotFound when no token has that hash.
func (s *RefreshTokens) RevokeByHash(ctx context.Context, hash []byte, now time.Time) (*RefreshToken, error) {
	var t *RefreshToken
	err := s.db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		var err error
		t, err = scanRefresh(tx.QueryRow(ctx, `SELECT `+refreshCols+` FROM refresh_tokens WHERE token_hash = $1`, hash))
		if errors.Is(err, pgx.ErrNoRows) {
			t = nil
			return nil
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, revokeFamily, t.FamilyID, now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("revoke refresh family: %w", err)
	}
	if t == nil {
		return nil, ErrRefreshNotFound
	}
	return t, nil
}

// RevokeCustomer revokes every session of a customer (logout everywhere, password
// change, account lock) and returns how many tokens were still live.
func (s *RefreshTokens) RevokeCustomer(ctx context.Context, customerID uuid.UUID, now time.Time) (int64, error) {
	return s.revoke(ctx, revokeByOwner, customerID, now)
}

func (s *RefreshTokens) revoke(ctx context.Context, query string, id uuid.UUID, now time.Time) (int64, error) {
	var n int64
	err := s.db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, query, id, now)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("revoke refresh tokens of %s: %w", id, err)
	}
	return n, nil
}

// DeleteExpired deletes the tokens of sessions that ended before cutoff (a periodic
// purge) and returns how many it deleted. Tokens of live sessions are kept even when used
// or expired: they are what detects a replay. It deletes in batches, so that no single
// transaction grows large (CockroachDB limits transaction size).
func (s *RefreshTokens) DeleteExpired(ctx context.Context, cutoff time.Time) (int64, error) {
	const batch = `DELETE FROM refresh_tokens WHERE token_hash IN (
		SELECT token_hash FROM refresh_tokens WHERE family_expires_at < $1 LIMIT 1000)`
	var total int64
	for {
		tag, err := s.db.Pool.Exec(ctx, batch, cutoff)
		if err != nil {
			return total, fmt.Errorf("purge refresh tokens: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 1000 {
			return total, nil
		}
	}
}

// familiesOf lists the sessions of a customer that have not ended by age (revoked ones
// included: a revocation set that missed one of them can be told again).
const familiesOf = `SELECT DISTINCT family_id FROM refresh_tokens WHERE customer_id = $1 AND family_expires_at > $2`

// RevokeCustomerSessions is RevokeCustomer returning the customer's sessions (family
// ids), so that their access tokens can be refused before they expire.
func (s *RefreshTokens) RevokeCustomerSessions(ctx context.Context, customerID uuid.UUID, now time.Time) ([]uuid.UUID, error) {
	var fams []uuid.UUID
	err := s.db.ExecuteTx(ctx, func(tx pgx.Tx) error {
		var err error
		fams, err = revokeOwner(ctx, tx, customerID, now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("revoke sessions of %s: %w", customerID, err)
	}
	return fams, nil
}

// revokeOwner revokes every token of a customer inside tx and returns the sessions.
func revokeOwner(ctx context.Context, tx pgx.Tx, customerID uuid.UUID, now time.Time) ([]uuid.UUID, error) {
	if _, err := tx.Exec(ctx, revokeByOwner, customerID, now); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, familiesOf, customerID, now)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

// FamilyRevoked reports whether a session was revoked (logout, reuse detection, logout
// everywhere). A session whose tokens were purged counts as not revoked: it ended by age
// long before, and so have its access tokens.
func (s *RefreshTokens) FamilyRevoked(ctx context.Context, familyID uuid.UUID) (bool, error) {
	var revoked bool
	err := s.db.Pool.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NOT NULL)`, familyID).Scan(&revoked)
	if err != nil {
		return false, fmt.Errorf("session %s revoked: %w", familyID, err)
	}
	return revoked, nil
}
