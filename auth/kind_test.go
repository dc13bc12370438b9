package auth

import (
	"fmt"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tok, _, _ := NewToken()
	tests := []struct{ in, want string }{
		{tok, "keygate_pat"},
		{"cos_abcdefgh1234", "cosmic_pat"},
		{"agk_abcdefgh1234", "cosmic_agent_key"},
		{"API-" + strings.Repeat("ab", 20), "cockpit_api_key"},
		{"USR-" + strings.Repeat("ab", 20), "cockpit_user_key"},
		{"csk_test_" + strings.Repeat("ab", 24), "cencori_secret_test"},
		{"csk_" + strings.Repeat("ab", 24), "cencori_secret"},
		{"cpk_" + strings.Repeat("ab", 24), "cencori_publishable"},
		{"cake_" + strings.Repeat("ab", 24), "cencori_agent_key"},
		// The dashboard's agent setup makes cake_ + a UUID without dashes.
		{"cake_" + strings.Repeat("ab", 16), "cencori_agent_key"},
		{"cake_" + strings.Repeat("ab", 20), "unknown"},
		{"cake_" + strings.Repeat("AB", 16), "unknown"},
		{"ap_abcdefghijklmnop", "agrenting_user_token"},
		{"ghp_abcdefghijklmnop", "unknown"},
		{"API-short", "unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.want+"/"+fmt.Sprint(len(tc.in)), func(t *testing.T) {
			if got := Classify(tc.in).ID; got != tc.want {
				t.Errorf("Classify = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestMaskShowsPrefixAndLastFour(t *testing.T) {
	tok, _, _ := NewToken()
	if got, want := Mask(tok), "kg_pat_…"+tok[len(tok)-4:]; got != want {
		t.Errorf("Mask = %q, want %q", got, want)
	}
	if got := Mask("short"); got != "****" {
		t.Errorf("short value masked as %q", got)
	}
	if got := Mask("somethingunknown1234"); got != "…1234" {
		t.Errorf("unknown value masked as %q", got)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := NewSecret("kg_pat_supersecretvalue")
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q", s, s, s, s, s), s.String()} {
		if strings.Contains(out, "supersecret") {
			t.Errorf("secret printed: %s", out)
		}
	}
	b, _ := s.MarshalJSON()
	if strings.Contains(string(b), "supersecret") {
		t.Error("secret marshalled")
	}
	if s.Reveal() != "kg_pat_supersecretvalue" {
		t.Error("Reveal lost the value")
	}
}
