package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestNewTokenRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		tok, parsed, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) != TokenLen || !TokenPattern().MatchString(tok) {
			t.Fatalf("token %q does not match the published pattern", Mask(tok))
		}
		got, reason, err := ParseToken(tok)
		if err != nil {
			t.Fatalf("own token rejected: %s", reason)
		}
		if got.PublicID != parsed.PublicID || got.SecretHash() != parsed.SecretHash() {
			t.Fatal("parse does not give back the minted parts")
		}
		if seen[parsed.PublicID] {
			t.Fatal("public id repeated")
		}
		seen[parsed.PublicID] = true
	}
}

// TestChecksumCatchesEveryTypo is the property docs/SECURITY.md, Token format,
// promises: every single-character substitution and every adjacent
// transposition fails the checksum, offline.
func TestChecksumCatchesEveryTypo(t *testing.T) {
	tok, _, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	start := len(TokenPrefix)
	for i := start; i < len(tok); i++ {
		if tok[i] == '_' {
			continue
		}
		for _, c := range []byte(base62Alphabet) {
			if c == tok[i] {
				continue
			}
			typo := tok[:i] + string(c) + tok[i+1:]
			if _, reason, err := ParseToken(typo); !errors.Is(err, ErrInvalidToken) || reason != "bad_checksum" {
				t.Fatalf("substitution at %d accepted (reason %q)", i, reason)
			}
		}
		if i+1 < len(tok) && tok[i+1] != '_' && tok[i] != tok[i+1] {
			swapped := tok[:i] + string(tok[i+1]) + string(tok[i]) + tok[i+2:]
			if _, _, err := ParseToken(swapped); err == nil {
				t.Fatalf("transposition at %d accepted", i)
			}
		}
	}
}

func TestParseTokenRejectsShapes(t *testing.T) {
	tok, _, _ := NewToken()
	tests := map[string]string{
		"empty":          "",
		"other prefix":   "ghp_" + tok[len(TokenPrefix):],
		"truncated":      tok[:len(tok)-1],
		"extended":       tok + "A",
		"CRLF injection": tok[:20] + "\r\n" + tok[22:],
		"non-ASCII":      tok[:20] + "é" + tok[22:],
		"64 KB":          strings.Repeat("a", 64<<10),
		"missing sep":    strings.Replace(tok, "_", "A", 3),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, reason, err := ParseToken(in); !errors.Is(err, ErrInvalidToken) || reason != "bad_shape" {
				t.Errorf("got %v (%s), want ErrInvalidToken for bad_shape", err, reason)
			}
		})
	}
}

// TestNoFalseMatches checks that random hex strings and UUID-like values
// never pass shape and checksum together.
func TestNoFalseMatches(t *testing.T) {
	buf := make([]byte, 26)
	for range 100000 {
		rand.Read(buf)
		s := TokenPrefix + hex.EncodeToString(buf)[:12] + "_" + hex.EncodeToString(buf)[12:50]
		if _, _, err := ParseToken(s); err == nil {
			t.Fatalf("random string %q passed", s)
		}
	}
}

func TestRandomBase62IsUniformEnough(t *testing.T) {
	// 62 * 2000 draws: with rejection sampling each character is expected
	// 2000 times; byte%62 would give the first eight about 2250.
	s, err := randomBase62(62 * 2000)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[rune]int{}
	for _, c := range s {
		counts[c]++
	}
	var early, late int
	for i, c := range base62Alphabet {
		if i < 8 {
			early += counts[c]
		} else if i >= 54 {
			late += counts[c]
		}
	}
	// The difference of two sums of 8 counts has a standard deviation near
	// 180; a modulo bias would add about 2000.
	if d := early - late; d > 1200 || d < -1200 {
		t.Errorf("first eight characters drawn %d times, last eight %d", early, late)
	}
}

func FuzzParseToken(f *testing.F) {
	tok, _, _ := NewToken()
	for _, s := range []string{tok, "", "kg_pat_", tok[:len(tok)-1] + "x", strings.ToUpper(tok)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, _, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("error %v is not ErrInvalidToken", err)
			}
			return
		}
		if !TokenPattern().MatchString(s) || checksum(s[:TokenLen-checksumLen]) != s[TokenLen-checksumLen:] || len(p.PublicID) != publicIDLen {
			t.Fatalf("accepted %q", s)
		}
	})
}

func BenchmarkParseToken(b *testing.B) {
	tok, _, _ := NewToken()
	for b.Loop() {
		if _, _, err := ParseToken(tok); err != nil {
			b.Fatal(err)
		}
	}
}
