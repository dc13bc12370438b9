package cencoritest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/keygate/keygate/provider/cencori/internal/transcript"
)

// TestTranscripts replays every recorded exchange against a fresh fake set
// up as the transcript says, in order, and checks each answer.
func TestTranscripts(t *testing.T) {
	all, err := transcript.LoadAll("../testdata/transcripts")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		t.Fatal("no transcripts")
	}
	for _, tr := range all {
		t.Run(tr.Name, func(t *testing.T) {
			var opts []Option
			if tr.Memory == "enabled" {
				opts = append(opts, WithMemoryEnabled())
			}
			s := New(opts...)
			s.SetProjectMemoryEnabled(DemoProject, tr.ProjectMemoryOn())
			hs := s.Start()
			defer hs.Close()
			vars := transcript.Vars{"key": DemoSecretKey}
			for i, ex := range tr.Exchanges {
				at := fmt.Sprintf("exchange %d (%s)", i, ex.Note)
				target := hs.URL + vars.Expand(ex.Request.Path)
				if len(ex.Request.Query) > 0 {
					q := url.Values{}
					for k, v := range ex.Request.Query {
						q.Set(k, vars.Expand(v))
					}
					target += "?" + q.Encode()
				}
				var body io.Reader
				if ex.Request.Body != nil {
					b, err := json.Marshal(vars.ExpandValue(ex.Request.Body))
					if err != nil {
						t.Fatal(err)
					}
					body = bytes.NewReader(b)
				}
				req, err := http.NewRequestWithContext(t.Context(), ex.Request.Method, target, body)
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range ex.Request.Headers {
					req.Header.Set(k, vars.Expand(v))
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("%s: %v", at, err)
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != ex.Response.Status {
					t.Fatalf("%s: status %d, want %d: %s", at, resp.StatusCode, ex.Response.Status, raw)
				}
				for name, want := range ex.Response.Headers {
					got := resp.Header.Get(name)
					if (want == "<present>" && got == "") || (want == "<absent>" && got != "") || (want != "<present>" && want != "<absent>" && got != want) {
						t.Errorf("%s: header %s = %q, want %s", at, name, got, want)
					}
				}
				var got any
				if err := json.Unmarshal(raw, &got); err != nil {
					t.Fatalf("%s: body %q is not JSON", at, raw)
				}
				if err := transcript.Match(ex.Response.Body, got, vars, "body"); err != nil {
					t.Fatalf("%s: %v", at, err)
				}
			}
		})
	}
}
