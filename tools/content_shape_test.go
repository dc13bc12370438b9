package tools

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/shape"
)

// content_get's fast path (the object encoded once, reused for the
// structured content and the text) gives what encoding each form on its
// own gives.
func TestGetResultFromEncodedObject(t *testing.T) {
	at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for _, fields := range []string{
		`{"body":"<p>hi & bye</p>","tags":["a"],"views":3}`,
		`{"we\"ird.key":"line\nbreak","--- end of data ---":"\u2028"}`,
		`{}`,
	} {
		m, err := shape.WholeObject(provider.Object{ID: "obj_1", Type: "posts", Slug: "s", Title: "T <b>", Status: "draft", Version: 2,
			Fields: json.RawMessage(fields), CreatedAt: at, ModifiedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		res := GetResult{Provider: "local", Object: m, Content: shape.UntrustedNotice}
		objJSON, err := shape.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		if got := res.encode(objJSON); string(got) != string(want) {
			t.Errorf("encode:\n got %s\nwant %s", got, want)
		}
		if got, want := renderGet(res, objJSON), renderGet(res, nil); got != want {
			t.Errorf("renderGet from the encoded object:\n got %q\nwant %q", got, want)
		}
	}
}
