package cockpittest

import (
	"net/http"
	"testing"
)

const transcriptDir = "../testdata/transcripts"

// TestTranscriptsAgainstFake plays every recorded conversation with
// Cockpit 2.13.2 against the fake.
func TestTranscriptsAgainstFake(t *testing.T) {
	all, err := LoadTranscripts(transcriptDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		t.Fatal("no transcripts")
	}
	for _, tr := range all {
		t.Run(tr.File, func(t *testing.T) {
			if tr.Source == "" || len(tr.Facts) == 0 {
				t.Error("a transcript names its source and the facts it pins")
			}
			s, err := tr.NewServer()
			if err != nil {
				t.Fatal(err)
			}
			ts := s.Start()
			defer ts.Close()
			for _, p := range Play(http.DefaultClient, s.URL(), tr) {
				t.Error(p)
			}
		})
	}
}

// TestPlayNoticesDifferences keeps the matcher honest: a transcript whose
// recorded answers are wrong must fail.
func TestPlayNoticesDifferences(t *testing.T) {
	s := New()
	ts := s.Start()
	defer ts.Close()
	get := TRequest{Method: "GET", Path: "/api/content/item/posts/6b0000000000000000000001", Key: "rw", Query: map[string]string{"fields": `{"title":1}`}}
	for name, resp := range map[string]TResponse{
		"status":       {Status: 201},
		"value":        {Status: 200, Body: []byte(`{"_id":"6b0000000000000000000001","title":"Hello"}`)},
		"key order":    {Status: 200, Body: []byte(`{"title":"Hello, world","_id":"6b0000000000000000000001"}`)},
		"extra key":    {Status: 200, Body: []byte(`{"_id":"6b0000000000000000000001"}`)},
		"raw text":     {Status: 200, Contains: []string{`"title":"Hello, world!"`}},
		"shape":        {Status: 200, Shape: "array"},
		"empty":        {Status: 200, Empty: true},
		"header":       {Status: 200, Header: map[string]string{"X-Nope": "1"}},
		"wrong vary":   {Status: 200, Vary: []string{"title"}, Body: []byte(`{"_id":"x","title":"y"}`)},
		"content type": {Status: 200, ContentType: "text/html"},
	} {
		t.Run(name, func(t *testing.T) {
			tr := Transcript{File: name, Exchanges: []Exchange{{Request: get, Response: resp}}}
			if p := Play(http.DefaultClient, s.URL(), tr); len(p) == 0 {
				t.Fatal("a wrong recording passed")
			}
		})
	}
	ok := Transcript{File: "ok", Exchanges: []Exchange{{Request: get, Response: TResponse{Status: 200, Vary: []string{"_id"},
		Body: []byte(`{"_id":"other","title":"Hello, world"}`)}}}}
	if p := Play(http.DefaultClient, s.URL(), ok); len(p) != 0 {
		t.Fatal(p)
	}
}
