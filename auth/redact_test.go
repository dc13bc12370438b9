package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

func TestRedactExactSecretsAndEncodings(t *testing.T) {
	secret := "upstream/secret+value=with?odd&chars"
	r := NewRedactor()
	r.Add(secret)
	r.Add("short") // ignored: would redact ordinary words
	forms := map[string]string{
		"plain":      secret,
		"base64":     base64.StdEncoding.EncodeToString([]byte(secret)),
		"base64url":  base64.RawURLEncoding.EncodeToString([]byte(secret)),
		"hex":        hex.EncodeToString([]byte(secret)),
		"HEX":        strings.ToUpper(hex.EncodeToString([]byte(secret))),
		"query":      url.QueryEscape(secret),
		"json-quote": strings.Trim(mustMarshal(secret), `"`),
	}
	for name, f := range forms {
		t.Run(name, func(t *testing.T) {
			got := r.Redact("before " + f + " after")
			if strings.Contains(got, f) || !strings.Contains(got, "[REDACTED") {
				t.Errorf("%s form survived: %q", name, got)
			}
		})
	}
	if got := r.Redact("a short story"); got != "a short story" {
		t.Errorf("short value redacted: %q", got)
	}
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestRedactKeyShapes(t *testing.T) {
	tok, _, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in string
		redact   bool
	}{
		{"keygate token", tok, true},
		{"cosmic pat", "cos_AbCdEfGh12345678", true},
		{"cosmic agent key", "agk_live_1234567890", true},
		{"cockpit custom key", "API-" + strings.Repeat("a1", 20), true},
		{"cockpit user key", "USR-" + strings.Repeat("0f", 20), true},
		{"cencori secret", "csk_" + strings.Repeat("ab", 24), true},
		{"cencori publishable test", "cpk_test_" + strings.Repeat("ab", 24), true},
		{"cencori agent", "cake_" + strings.Repeat("cd", 24), true},
		{"cencori agent from agent setup", "cake_" + strings.Repeat("cd", 16), true},
		{"cencori generic", "cencori_abcdefghijklmnop", true},
		{"agrenting token", "ap_abcdefghijklmnopqrst", true},
		{"agrenting fake agent key", "agr_" + strings.Repeat("3f", 20), true},
		{"agrenting fake session", "sess_" + strings.Repeat("a9", 24), true},
		{"session inside a word", "access_" + strings.Repeat("a9", 12), false},
		{"inside a word", "sitemap_generator_enabled_value", false},
		{"ordinary text", "the api key is configured", false},
		{"masked form", "kg_pat_…x9Qa", false},
	}
	r := NewRedactor()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := r.Redact("x " + tc.in + " y")
			if redacted := !strings.Contains(got, tc.in); redacted != tc.redact {
				t.Errorf("Redact(%q) = %q, want redacted=%v", tc.in, got, tc.redact)
			}
		})
	}
}

func TestRedactKeepsJSONValid(t *testing.T) {
	r := NewRedactor()
	secret := `we"ird\secret<value>`
	r.Add(secret)
	doc := mustMarshal(map[string]any{"a": secret, "b": "API-" + strings.Repeat("a1", 20), "c": []string{"x " + secret}})
	out := r.Redact(doc)
	if !json.Valid([]byte(out)) || strings.Contains(out, "ird") {
		t.Errorf("redacted JSON %q", out)
	}
}

func TestRedactIsIdempotent(t *testing.T) {
	r := NewRedactor()
	tok, _, _ := NewToken()
	r.Add(tok)
	once := r.Redact("t=" + tok)
	if twice := r.Redact(once); twice != once {
		t.Errorf("second pass changed %q to %q", once, twice)
	}
}

func TestSlogReplaceAttr(t *testing.T) {
	r := NewRedactor()
	tok, _, _ := NewToken()
	r.Add(tok)
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: r.SlogReplaceAttr}))
	log.Info("got "+tok, "token", "anything", "api_key", "x", "err", errors.New("failed with "+tok),
		"detail", "cos_AbCdEfGh12345678", "secret", NewSecret(tok), "any", []string{tok})
	out := buf.String()
	for _, leak := range []string{tok, "anything", "cos_AbCdEfGh12345678"} {
		if strings.Contains(out, leak) {
			t.Errorf("log line carries %q: %s", leak, out)
		}
	}
	if !strings.Contains(out, `"api_key":"[REDACTED]"`) {
		t.Errorf("api_key not dropped: %s", out)
	}
}

func BenchmarkRedact(b *testing.B) {
	r := NewRedactor()
	for range 10 {
		tok, _, _ := NewToken()
		r.Add(tok)
	}
	text := strings.Repeat(`{"id":"obj_abc","title":"A perfectly ordinary post","body":"nothing secret here"} `, 50)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		r.Redact(text)
	}
}

// TestKeyPrefixesCoverKeyShapes keeps the prefilter honest: every
// alternative of keyShapes must start with one of keyPrefixes.
func TestKeyPrefixesCoverKeyShapes(t *testing.T) {
	samples := []string{"kg_pat_" + strings.Repeat("a", 20), "cos_abcdefgh", "agk_abcdefgh", "API-" + strings.Repeat("a", 40),
		"USR-" + strings.Repeat("a", 40), "csk_" + strings.Repeat("a", 16), "cpk_test_" + strings.Repeat("a", 16),
		"cake_" + strings.Repeat("a", 16), "cencori_" + strings.Repeat("a", 16), "cen_" + strings.Repeat("a", 32), "ap_" + strings.Repeat("a", 16),
		"agr_" + strings.Repeat("a", 16), "sess_" + strings.Repeat("a", 16)}
	if len(samples) != strings.Count(keyShapes().String(), "|")+1 {
		t.Fatalf("keyShapes has %d alternatives, the samples cover %d: add one", strings.Count(keyShapes().String(), "|")+1, len(samples))
	}
	for _, s := range samples {
		if !keyShapes().MatchString(s) || !mayHoldKey(s) {
			t.Errorf("%q: matched %v, prefilter %v", s, keyShapes().MatchString(s), mayHoldKey(s))
		}
	}
}

// mayHoldKey answers as searching for every prefix would.
func TestMayHoldKey(t *testing.T) {
	contains := func(s string) bool {
		for _, p := range keyPrefixes {
			if strings.Contains(s, p) {
				return true
			}
		}
		return false
	}
	for _, s := range []string{"", "_", "-", "kg", "kg_", "xkg_", "a kg_ b", "sitemap_", "API-", "API_", "api-", "USR-x", "cencori_", "cen-",
		"created_at 2026-11-22 modified_at", "csk_test", "cpk-", "ap_", "map-ap_", "cake_", "cak_e_", strings.Repeat("-_", 100) + "agk_"} {
		if got, want := mayHoldKey(s), contains(s); got != want {
			t.Errorf("mayHoldKey(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzMayHoldKey(f *testing.F) {
	for _, s := range []string{"kg_", "x_y-z", "cencori_", "API-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := false
		for _, p := range keyPrefixes {
			want = want || strings.Contains(s, p)
		}
		if got := mayHoldKey(s); got != want {
			t.Fatalf("mayHoldKey(%q) = %v, want %v", s, got, want)
		}
	})
}

// The exact-value filter never says no to a text that holds a value.
func TestExactFilter(t *testing.T) {
	values := map[string]string{"secretvalue1": "", "secretvalue2xyz": "", "zzzzzzzz": "", "YWJjZGVmZ2hp": ""}
	f := newExactFilter(values)
	tests := []struct {
		text string
		want bool
	}{
		{"", false},
		{"short", false},
		{"secretvalue1", true},
		{"at the end: secretvalue1", true},
		{"secretvalue1 at the start", true},
		{"secretvalue2xy", false}, // a prefix of a value is not the value
		{"secretvalue2xyz!", true},
		{"zzzzzzz", false},
		{"zzzzzzzzz", true},
		{"YWJjZGVmZ2h", false},
		{"xYWJjZGVmZ2hpx", true},
		{"an ordinary text with no secret in it at all, only words", false},
	}
	for _, tc := range tests {
		if got := f.mayHold(tc.text); got != tc.want {
			t.Errorf("mayHold(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
	var none *exactFilter
	if !none.mayHold("anything") {
		t.Error("a nil filter must pass everything")
	}
}

// Redact gives the same text with the filter as without it.
func TestRedactFilterChangesNothing(t *testing.T) {
	r := NewRedactor()
	var secrets []string
	for range 5 {
		tok, _, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		r.Add(tok)
		secrets = append(secrets, tok)
	}
	r.Add(`we"ird\secret<value>`)
	secrets = append(secrets, `we"ird\secret<value>`)
	unfiltered := NewRedactor()
	for _, s := range secrets {
		unfiltered.Add(s)
	}
	unfiltered.filter = nil
	var texts []string
	for _, s := range secrets {
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s)), hex.EncodeToString([]byte(s)),
			strings.ToUpper(hex.EncodeToString([]byte(s))), url.QueryEscape(s), strings.Trim(mustMarshal(s), `"`)} {
			texts = append(texts, form, "x "+form+" y", form[:len(form)-1], form[1:], "a"+form[:9]+"b")
		}
	}
	texts = append(texts, "", "plain text", mustMarshal(map[string]any{"a": secrets[0], "b": []string{secrets[5]}}))
	for _, s := range texts {
		if got, want := r.Redact(s), unfiltered.Redact(s); got != want {
			t.Errorf("Redact(%q) = %q, without the filter %q", s, got, want)
		}
	}
}
