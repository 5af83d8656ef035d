package resolvers

import (
	"encoding/base64"
	"strings"

	"github.com/google/uuid"

	"github.com/shopfront/bookstore"
)

// Global ids are base64url("Type:uuid"): opaque to clients, self-describing for node(id:).
const (
	typeBook     = "Book"
	typeAuthor   = "Author"
	typeCategory = "Category"
	typeReview   = "Review"
)

func globalID(typ string, id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(typ + ":" + id.String()))
}

// parseGlobalID splits a global id into its type and uuid; a malformed id is a
// BAD_USER_INPUT error about field.
func parseGlobalID(field, id string) (string, uuid.UUID, error) {
	bad := bookstore.InvalidField(field, "malformed id; pass an id returned by this API")
	if len(id) > 128 {
		return "", uuid.Nil, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		return "", uuid.Nil, bad
	}
	typ, rest, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", uuid.Nil, bad
	}
	u, err := uuid.Parse(rest)
	if err != nil {
		return "", uuid.Nil, bad
	}
	return typ, u, nil
}

// parseTypedID parses a global id that must be of type typ.
func parseTypedID(field, typ, id string) (uuid.UUID, error) {
	t, u, err := parseGlobalID(field, id)
	if err != nil {
		return uuid.Nil, err
	}
	if t != typ {
		return uuid.Nil, bookstore.InvalidField(field, "id is not a %s id", typ)
	}
	return u, nil
}
