// Package auth holds keygate's token format, scopes, principals, secret
// redaction and env-file writing: everything about credentials that does not
// depend on where they are stored.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"regexp"
	"sync"
)

// Token layout (docs/SECURITY.md, Token format): prefix, 12-char public id, "_", 32-char
// secret, 6-char CRC32 checksum of everything before it. All parts are base62.
const (
	TokenPrefix    = "kg_pat_"
	publicIDLen    = 12
	secretLen      = 32
	checksumLen    = 6
	TokenLen       = len(TokenPrefix) + publicIDLen + 1 + secretLen + checksumLen
	base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// TokenVar is the variable that holds keygate's own credential.
const TokenVar = "KEYGATE_TOKEN"

// TokenPattern is the published shape of a keygate token. A string matching it
// may still fail the checksum. It is compiled on first use, to keep it off
// the start-up path.
var TokenPattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^kg_pat_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}$`)
})

// ErrInvalidToken is the only error a caller ever sees for a bad token,
// whatever the reason, so that failures cannot be told apart from outside.
var ErrInvalidToken = errors.New("invalid token")

// ParsedToken is a token that has the right shape and checksum. It has not
// been checked against any store.
type ParsedToken struct {
	PublicID string
	secret   string
}

// SecretHash returns the SHA-256 of the secret part, the only form a store
// ever keeps.
func (p ParsedToken) SecretHash() [32]byte { return sha256.Sum256([]byte(p.secret)) }

// NewToken mints a token from crypto/rand. It returns the full token, shown to
// its owner once, and the parsed form for storing.
func NewToken() (string, ParsedToken, error) {
	id, err := randomBase62(publicIDLen)
	if err != nil {
		return "", ParsedToken{}, err
	}
	secret, err := randomBase62(secretLen)
	if err != nil {
		return "", ParsedToken{}, err
	}
	body := TokenPrefix + id + "_" + secret
	return body + checksum(body), ParsedToken{PublicID: id, secret: secret}, nil
}

// ParseToken checks shape and checksum, in that order, without touching any
// store. Every failure is ErrInvalidToken; reason says why, for internal logs
// only (it never contains the token).
func ParseToken(tok string) (p ParsedToken, reason string, err error) {
	if len(tok) != TokenLen || !TokenPattern().MatchString(tok) {
		return ParsedToken{}, "bad_shape", ErrInvalidToken
	}
	body, sum := tok[:TokenLen-checksumLen], tok[TokenLen-checksumLen:]
	if checksum(body) != sum {
		return ParsedToken{}, "bad_checksum", ErrInvalidToken
	}
	id := body[len(TokenPrefix) : len(TokenPrefix)+publicIDLen]
	secret := body[len(TokenPrefix)+publicIDLen+1:]
	return ParsedToken{PublicID: id, secret: secret}, "", nil
}

// LooksLikeToken reports whether s has the shape of a keygate token; it does
// not check the checksum.
func LooksLikeToken(s string) bool { return TokenPattern().MatchString(s) }

func checksum(body string) string {
	return encodeBase62Fixed(crc32.ChecksumIEEE([]byte(body)), checksumLen)
}

func encodeBase62Fixed(v uint32, width int) string {
	out := make([]byte, width)
	for i := width - 1; i >= 0; i-- {
		out[i] = base62Alphabet[v%62]
		v /= 62
	}
	return string(out)
}

// randomBase62 draws n characters uniformly by rejection sampling: bytes at or
// above 248 (the largest multiple of 62 below 256) are discarded, so no
// character is favoured the way byte%62 would favour the first eight.
func randomBase62(n int) (string, error) {
	const limit = 256 - 256%62
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4+8)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("reading crypto/rand: %w", err)
		}
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out = append(out, base62Alphabet[int(b)%62])
			if len(out) == n {
				break
			}
		}
	}
	return string(out), nil
}
