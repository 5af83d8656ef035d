// Package pii protects customers' personal data at rest: envelope encryption of fields
// (email, name, phone, addresses) under a master key from configuration, a keyed blind
// index for looking customers up by email without storing it in clear, and a guard that
// spots payment card numbers so they are never stored or logged.
//
// # Envelope encryption
//
// Every Encrypt call draws a fresh random 256-bit data key (DEK), encrypts the plaintext
// with it under AES-256-GCM and stores the DEK wrapped (AES-256-GCM) by the active master
// key. A DEK per record rather than per customer was chosen because:
//   - a DEK encrypts exactly one message, so GCM's nonce and usage limits never apply to
//     data keys, and no key table has to be kept, cached or backed up alongside the rows;
//   - rotating a master key only re-wraps 60 bytes per value (Rewrap) and never touches
//     the data, exactly as it would with per-customer keys;
//   - the cost is ~90 bytes and one extra AES-GCM operation per value, negligible here.
//
// Crypto-shredding a customer (a per-customer DEK deleted on erasure) is not offered:
// erasure deletes the rows instead.
//
// The master key only ever encrypts DEKs with random 96-bit nonces, so it stays far below
// GCM's 2^32-messages-per-key bound (4 billion values) between rotations.
//
// # Blob format (version 1)
//
//	offset  size  field
//	0       1     version (1)
//	1       1     n = length of the master key id (1..64)
//	2       n     master key id (ASCII)
//	2+n     60    wrapped DEK: 12-byte nonce || AES-GCM(master, DEK) (32 + 16-byte tag)
//	62+n    12    data nonce
//	74+n    rest  AES-GCM(DEK, plaintext) (ciphertext || 16-byte tag)
//
// The wrapped DEK is authenticated together with the version and master key id, so a
// blob's header cannot be edited to point at another key. The data is authenticated
// together with the version and the caller's additional data — the row's identity built
// with AAD(table, column, rowID) — so a ciphertext copied into another row or column fails
// to decrypt. The master key id is deliberately not part of the data's authenticated
// data, so that Rewrap can move a blob to a new master key without re-encrypting it.
//
// # Configuration
//
//	PII_MASTER_KEYS="kid1:base64key,kid2:base64key"   first = active; others decrypt only
//	PII_INDEX_KEY="base64key"                          blind-index HMAC key (32+ bytes)
//
// Keys are 32 random bytes (GenerateKey), base64 (standard or URL alphabet, padded or
// not). Rotating a master key: prepend the new key to PII_MASTER_KEYS, deploy, run the
// re-wrap job (Rewrap over every encrypted column), then drop the old key. Rotating the
// index key is different: every blind index must be recomputed from the decrypted email
// (a re-index) before the old key is dropped, and lookups miss until it is done.
package pii

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/shopfront/bookstore/internal/keylist"
)

// KeySize is the size of master keys, data keys and the index key: 256 bits.
const KeySize = 32

const (
	version1    = 1
	nonceSize   = 12
	tagSize     = 16
	wrappedSize = nonceSize + KeySize + tagSize
	maxKeyID    = 64
)

// Errors returned by Decrypt and Rewrap. They carry no plaintext or key material.
var (
	// ErrMalformed means the blob is not a ciphertext of a version this package knows.
	ErrMalformed = errors.New("pii: malformed ciphertext")
	// ErrUnknownKey means the blob is wrapped by a master key that is not configured.
	ErrUnknownKey = errors.New("pii: unknown master key")
	// ErrDecrypt means authentication failed: wrong key, tampered blob, or the blob
	// belongs to another row or column (wrong additional data).
	ErrDecrypt = errors.New("pii: decryption failed")
)

// MasterKey is a key-encryption key with its id. The id is stored in every blob it wraps.
type MasterKey struct {
	ID  string
	Key []byte
}

// Keyring holds the active master key, which wraps new data keys, and older master keys,
// which still unwrap the data keys of existing blobs. It is safe for concurrent use.
type Keyring struct {
	active string
	ids    []string
	aeads  map[string]cipher.AEAD
}

// NewKeyring returns a keyring whose first key is the active one.
func NewKeyring(keys ...MasterKey) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("pii: no master key")
	}
	k := &Keyring{active: keys[0].ID, aeads: make(map[string]cipher.AEAD, len(keys))}
	for _, mk := range keys {
		if err := validKeyID(mk.ID); err != nil {
			return nil, err
		}
		if len(mk.Key) != KeySize {
			return nil, fmt.Errorf("pii: master key %q is %d bytes, want %d", mk.ID, len(mk.Key), KeySize)
		}
		if _, dup := k.aeads[mk.ID]; dup {
			return nil, fmt.Errorf("pii: master key id %q appears twice", mk.ID)
		}
		aead, err := newGCM(mk.Key)
		if err != nil {
			return nil, err
		}
		k.aeads[mk.ID] = aead
		k.ids = append(k.ids, mk.ID)
	}
	return k, nil
}

// ParseKeyring parses the PII_MASTER_KEYS format: comma-separated "kid:base64key" pairs,
// the first one active. Spaces around entries are ignored.
func ParseKeyring(s string) (*Keyring, error) {
	entries, err := parseKeyList(s)
	if err != nil {
		return nil, err
	}
	keys := make([]MasterKey, len(entries))
	for i, e := range entries {
		keys[i] = MasterKey{ID: e.id, Key: e.key}
	}
	return NewKeyring(keys...)
}

// GenerateKey returns KeySize random bytes, for a new master key or index key.
func GenerateKey() ([]byte, error) {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("pii: generate key: %w", err)
	}
	return b, nil
}

// EncodeKey encodes a key for PII_INDEX_KEY (standard base64).
func EncodeKey(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

// FormatKey encodes one PII_MASTER_KEYS entry, "kid:base64key". Join several with
// commas, the active key first. The result is a secret.
func FormatKey(id string, key []byte) string { return id + ":" + EncodeKey(key) }

// ActiveKeyID is the id of the master key that wraps new data keys.
func (k *Keyring) ActiveKeyID() string { return k.active }

// KeyIDs lists the configured master key ids, the active one first.
func (k *Keyring) KeyIDs() []string { return append([]string(nil), k.ids...) }

// String hides the key material from logs and %v.
func (k *Keyring) String() string {
	return fmt.Sprintf("pii.Keyring{active: %s, keys: %s}", k.active, strings.Join(k.ids, ","))
}

// GoString hides the key material from %#v.
func (k *Keyring) GoString() string { return k.String() }

// AAD builds the additional authenticated data that binds a ciphertext to one cell:
// its table, column and row id. Each part is length-prefixed, so no two different
// triples encode alike.
func AAD(table, column, rowID string) []byte {
	b := make([]byte, 0, 16+len(table)+len(column)+len(rowID))
	for _, p := range []string{table, column, rowID} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

// Encrypt seals plaintext under a fresh data key wrapped by the active master key. aad
// must be the cell's identity (see AAD) and be given again to Decrypt.
func (k *Keyring) Encrypt(plaintext, aad []byte) ([]byte, error) {
	dek := make([]byte, KeySize)
	if _, err := rand.Read(dek); err != nil {
		return nil, fmt.Errorf("pii: generate data key: %w", err)
	}
	header := header(k.active)
	out := make([]byte, 0, len(header)+wrappedSize+nonceSize+len(plaintext)+tagSize)
	out = append(out, header...)
	out, err := k.wrap(out, k.active, header, dek)
	if err != nil {
		return nil, err
	}
	data, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("pii: generate nonce: %w", err)
	}
	out = append(out, nonce...)
	return data.Seal(out, nonce, plaintext, dataAAD(aad)), nil
}

// Decrypt opens a blob made by Encrypt (with any configured master key) for the cell
// identified by aad.
func (k *Keyring) Decrypt(blob, aad []byte) ([]byte, error) {
	p, err := parse(blob)
	if err != nil {
		return nil, err
	}
	dek, err := k.unwrap(p)
	if err != nil {
		return nil, err
	}
	data, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	plain, err := data.Open(nil, p.nonce, p.ciphertext, dataAAD(aad))
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}

// Rewrap re-wraps the blob's data key under the active master key, leaving the encrypted
// data as it is. changed is false (and blob is returned as is) when the active key
// already wraps it. Rewrap needs no additional data: it never decrypts the data.
func (k *Keyring) Rewrap(blob []byte) (out []byte, changed bool, err error) {
	p, err := parse(blob)
	if err != nil {
		return nil, false, err
	}
	if p.keyID == k.active {
		return blob, false, nil
	}
	dek, err := k.unwrap(p)
	if err != nil {
		return nil, false, err
	}
	header := header(k.active)
	out = make([]byte, 0, len(header)+wrappedSize+nonceSize+len(p.ciphertext))
	out = append(out, header...)
	if out, err = k.wrap(out, k.active, header, dek); err != nil {
		return nil, false, err
	}
	out = append(out, p.nonce...)
	out = append(out, p.ciphertext...)
	return out, true, nil
}

// KeyID returns the id of the master key that wraps blob's data key.
func KeyID(blob []byte) (string, error) {
	p, err := parse(blob)
	if err != nil {
		return "", err
	}
	return p.keyID, nil
}

type parsed struct {
	header     []byte // version, id length, id
	keyID      string
	wrapped    []byte
	nonce      []byte
	ciphertext []byte
}

func parse(blob []byte) (parsed, error) {
	if len(blob) < 2 || blob[0] != version1 {
		return parsed{}, ErrMalformed
	}
	n := int(blob[1])
	if n == 0 || n > maxKeyID || len(blob) < 2+n+wrappedSize+nonceSize+tagSize {
		return parsed{}, ErrMalformed
	}
	rest := blob[2+n:]
	return parsed{
		header:     blob[:2+n],
		keyID:      string(blob[2 : 2+n]),
		wrapped:    rest[:wrappedSize],
		nonce:      rest[wrappedSize : wrappedSize+nonceSize],
		ciphertext: rest[wrappedSize+nonceSize:],
	}, nil
}

func header(keyID string) []byte {
	h := make([]byte, 0, 2+len(keyID))
	h = append(h, version1, byte(len(keyID)))
	return append(h, keyID...)
}

func (k *Keyring) wrap(dst []byte, keyID string, header, dek []byte) ([]byte, error) {
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("pii: generate nonce: %w", err)
	}
	dst = append(dst, nonce...)
	return k.aeads[keyID].Seal(dst, nonce, dek, wrapAAD(header)), nil
}

func (k *Keyring) unwrap(p parsed) ([]byte, error) {
	aead, ok := k.aeads[p.keyID]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, p.keyID)
	}
	dek, err := aead.Open(nil, p.wrapped[:nonceSize], p.wrapped[nonceSize:], wrapAAD(p.header))
	if err != nil {
		return nil, ErrDecrypt
	}
	return dek, nil
}

// Domain separation: a wrapped DEK and a data ciphertext can never be confused even if a
// key were reused for both.
func wrapAAD(header []byte) []byte { return append([]byte("bookstore/pii/dek\x00"), header...) }

func dataAAD(aad []byte) []byte {
	return append([]byte("bookstore/pii/data\x00\x01"), aad...)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("pii: %w", err)
	}
	return cipher.NewGCM(block)
}

type keyEntry struct {
	id  string
	key []byte
}

// parseKeyList parses "kid:base64,kid:base64" (package keylist). Errors name the entry by
// position and id, never by its key.
func parseKeyList(s string) ([]keyEntry, error) {
	entries, err := keylist.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("pii: master keys: %w", err)
	}
	out := make([]keyEntry, len(entries))
	for i, e := range entries {
		if err := validKeyID(e.ID); err != nil {
			return nil, err
		}
		out[i] = keyEntry{id: e.ID, key: e.Key}
	}
	return out, nil
}

// DecodeKey decodes a base64 key in any of the four common alphabets/paddings.
func DecodeKey(s string) ([]byte, error) { return keylist.DecodeBase64(s) }

func validKeyID(id string) error {
	if id == "" || len(id) > maxKeyID {
		return fmt.Errorf("pii: key id %q must be 1..%d characters", id, maxKeyID)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("pii: key id %q may only hold letters, digits, '-', '_' and '.'", id)
		}
	}
	return nil
}
