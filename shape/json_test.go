package shape

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// Marshal must write exactly what json.Marshal writes.
func TestMarshalValueMatchesEncodingJSON(t *testing.T) {
	tests := []struct {
		name string
		v    any
	}{
		{"nil", nil},
		{"bools", []any{true, false}},
		{"empty containers", map[string]any{"a": []any{}, "b": map[string]any{}}},
		{"sorted keys", map[string]any{"b": 1.0, "a": 2.0, "B": 3.0, "é": 4.0, "": 5.0}},
		{"escapes", "quote \" backslash \\ slash / tab \t nl \n cr \r bs \b ff \f nul \x00 unit \x1f del \x7f"},
		{"html", "<script>alert('x') && 1</script>"},
		{"line separators", "a\u2028b\u2029c"},
		{"invalid utf-8", "ok\xff\xfe ok \xc3"},
		{"unicode", "Crème 日本語 👩\u200d💻 \ufffd"},
		{"escaped keys", map[string]any{"<k>": "v", "a\"b": "\n"}},
		{"numbers", []any{json.Number("0"), json.Number("-1.5e-3"), json.Number("12345678901234567890"), json.Number("")}},
		{"floats", []any{0.0, math.Copysign(0, -1), 1.0, -2.5, 1e20, 1e21, 1e-6, 1e-7, 123456789.125, 5e-324, math.MaxFloat64}},
		{"nested", map[string]any{"fields": map[string]any{"tags": []any{"a", map[string]any{"x": nil}}, "n": json.Number("3")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Marshal(tc.v)
			if err != nil || string(got) != string(want) {
				t.Errorf("marshalValue = %s, %v\n json.Marshal = %s", got, err, want)
			}
		})
	}
}

// Values Marshal does not encode itself still give json.Marshal's
// answer, errors included.
func TestMarshalValueFallsBack(t *testing.T) {
	for _, v := range []any{
		map[string]any{"s": []string{"a"}, "n": 3},
		struct{ A int }{1},
		map[string]any{"bad": json.Number("1x")},
		math.NaN(),
	} {
		want, werr := json.Marshal(v)
		got, gerr := Marshal(v)
		if string(got) != string(want) || (werr == nil) != (gerr == nil) {
			t.Errorf("%#v: marshalValue = %s, %v; json.Marshal = %s, %v", v, got, gerr, want, werr)
		}
	}
}

func TestValidNumber(t *testing.T) {
	for s, want := range map[string]bool{
		"": true, "0": true, "-0": true, "12": true, "1.5": true, "1e5": true, "1E+5": true, "-1.5e-5": true,
		"01": false, "-": false, "1.": false, ".5": false, "1e": false, "+1": false, "1x": false, "0x10": false, "NaN": false,
	} {
		if got := validNumber(s); got != want {
			t.Errorf("validNumber(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzMarshalValue(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `["<>&",1.5e300,null,true]`, `{"b":{"c":"\u2028\ud800"}}`, `"\u0000\u001f\u007f"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v any
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		if dec.Decode(&v) != nil {
			return
		}
		want, err := json.Marshal(v)
		if err != nil {
			return
		}
		if got, err := Marshal(v); err != nil || string(got) != string(want) {
			t.Fatalf("marshalValue(%q) = %s, %v; json.Marshal = %s", s, got, err, want)
		}
	})
}
