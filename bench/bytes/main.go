// Command bytes measures what the model is handed: the size of keygate's
// default content_list output for 20 objects (its text content and its
// structuredContent) against the raw JSON of the same 20 objects as the back
// end returns them.
//
//	go run ./bench/bytes --keygate BIN [--fake-cosmic BIN]
//
// Local: the store is created by keygate's first run, 20 realistic posts
// (bodies of 0.3–1.3 KB, author, tags, views) are added, and raw is
// json.Marshal of the []provider.Object that provider/local's List returns
// with Limit 20. Cosmic (with --fake-cosmic, a build of
// provider/cosmic/cosmictest/cmd/fake-cosmic): the same 20 realistic posts
// are added to the fake through its API, raw is the body of the fake's
// GET /objects?query={"type":"posts"}&status=any&sort=-modified_at&limit=20
// (whole objects, as a client of the API gets them), and keygate runs with
// the COSMIC_* variables the fake prints.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/keygate/keygate/bench/internal/benchkit"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
)

func main() {
	keygate := flag.String("keygate", "", "keygate binary (required)")
	fakeCosmic := flag.String("fake-cosmic", "", "fake-cosmic binary; empty: skip Cosmic")
	cosmicProvider := flag.String("cosmic-provider", "cosmic", "keygate's name for the Cosmic provider")
	flag.Parse()
	if *keygate == "" {
		fmt.Fprintln(os.Stderr, "bytes: --keygate is required")
		os.Exit(2)
	}
	fmt.Printf("## Model-facing bytes: content_list (defaults) for 20 objects vs the raw objects\n\n")
	fmt.Println("| provider | raw JSON of the 20 objects | text content | structuredContent | text, % of raw | structured, % of raw |")
	fmt.Println("| --- | --- | --- | --- | --- | --- |")
	local, err := runLocal(*keygate)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bytes:", err)
		os.Exit(1)
	}
	results := []result{local}
	cosmicNote := "Cosmic: not measured (no --fake-cosmic)"
	if *fakeCosmic != "" {
		c, err := runCosmic(*keygate, *fakeCosmic, *cosmicProvider)
		switch {
		case errors.Is(err, errNoProvider):
			cosmicNote = "Cosmic: PENDING: " + err.Error()
		case err != nil:
			fmt.Fprintln(os.Stderr, "bytes (cosmic):", err)
			os.Exit(1)
		default:
			results = append(results, c)
			cosmicNote = ""
		}
	}
	for _, r := range results {
		fmt.Printf("| %s | %d | %d | %d | %.1f%% | %.1f%% |\n", r.name, r.raw, r.text, r.structured,
			100*float64(r.text)/float64(r.raw), 100*float64(r.structured)/float64(r.raw))
	}
	fmt.Println()
	for _, r := range results {
		t, s := float64(r.text)/float64(r.raw), float64(r.structured)/float64(r.raw)
		fmt.Printf("TARGET model-facing bytes (%s) <= 35%% of raw: text %.1f%% %s, structuredContent %.1f%% %s\n",
			r.name, 100*t, benchkit.Verdict(t <= 0.35), 100*s, benchkit.Verdict(s <= 0.35))
	}
	if cosmicNote != "" {
		fmt.Println(cosmicNote)
	}
}

type result struct {
	name                  string
	raw, text, structured int
}

// listResponse is the part of a tools/call response this program reads.
type listResponse struct {
	Result struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		Structured json.RawMessage `json:"structuredContent"`
		IsError    bool            `json:"isError"`
	} `json:"result"`
}

func (l listResponse) ids() []string {
	var s struct {
		Objects []struct {
			ID string `json:"id"`
		} `json:"objects"`
	}
	_ = json.Unmarshal(l.Result.Structured, &s)
	var out []string
	for _, o := range s.Objects {
		out = append(out, o.ID)
	}
	return out
}

// contentList runs keygate over stdio and calls content_list with args.
func contentList(keygate string, args, env []string, toolArgs map[string]any) (listResponse, error) {
	c, err := benchkit.StartStdio(keygate, args, env)
	if err != nil {
		return listResponse{}, err
	}
	defer c.Close()
	line, err := c.CallTool("content_list", toolArgs)
	if err != nil {
		return listResponse{}, err
	}
	var resp listResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return listResponse{}, fmt.Errorf("decoding content_list: %w", err)
	}
	if resp.Result.IsError || len(resp.Result.Content) == 0 {
		return resp, fmt.Errorf("content_list failed: %.500s\n%s", line, c.Stderr())
	}
	// Compact, as it travels.
	var compact bytes.Buffer
	if err := json.Compact(&compact, resp.Result.Structured); err != nil {
		return resp, err
	}
	resp.Result.Structured = compact.Bytes()
	return resp, nil
}

func textLen(r listResponse) int {
	n := 0
	for _, c := range r.Result.Content {
		n += len(c.Text)
	}
	return n
}

func runLocal(keygate string) (result, error) {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "keygate-bench-bytes-*")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(tmp)
	in, err := benchkit.NewInstance(tmp)
	if err != nil {
		return result{}, err
	}
	if err := in.Create(keygate); err != nil {
		return result{}, err
	}
	if err := in.AddPosts(ctx, 25); err != nil {
		return result{}, err
	}
	s, err := local.Open(ctx, in.Store, local.Options{})
	if err != nil {
		return result{}, err
	}
	page, err := s.List(ctx, provider.ListQuery{Type: "posts", Limit: 20})
	if err := errors.Join(err, s.Close()); err != nil {
		return result{}, err
	}
	raw, err := json.Marshal(page.Objects)
	if err != nil {
		return result{}, err
	}
	resp, err := contentList(keygate, in.Args(), benchkit.CleanEnv(), map[string]any{"type": "posts"})
	if err != nil {
		return result{}, err
	}
	var want []string
	for _, o := range page.Objects {
		want = append(want, o.ID)
	}
	if got := resp.ids(); !slices.Equal(got, want) {
		return result{}, fmt.Errorf("content_list returned other objects than List: %v vs %v", got, want)
	}
	return result{name: "local (embedded store)", raw: len(raw), text: textLen(resp), structured: len(resp.Result.Structured)}, nil
}

// errNoProvider means this keygate build does not serve the provider.
var errNoProvider = errors.New("keygate does not serve the Cosmic provider yet")

func runCosmic(keygate, fakeBin, providerName string) (result, error) {
	fake, err := benchkit.StartFakeCosmic(fakeBin)
	if err != nil {
		return result{}, err
	}
	defer fake.Stop()
	if err := fake.AddPosts(20); err != nil {
		return result{}, err
	}
	q, _ := json.Marshal(map[string]string{"type": "posts"})
	raw, err := fake.Get("/objects", url.Values{"query": {string(q)}, "status": {"any"}, "sort": {"-modified_at"}, "limit": {"20"}})
	if err != nil {
		return result{}, err
	}
	var page struct {
		Objects []struct {
			ID string `json:"id"`
		} `json:"objects"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		return result{}, fmt.Errorf("GET /objects: %w", err)
	}
	if len(page.Objects) != 20 {
		return result{}, fmt.Errorf("GET /objects: want 20 objects, got %d", len(page.Objects))
	}
	tmp, err := os.MkdirTemp("", "keygate-bench-bytes-cosmic-*")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(tmp)
	in, err := benchkit.NewInstance(tmp)
	if err != nil {
		return result{}, err
	}
	env := benchkit.CleanEnv(fake.KeygateEnv()...)
	if err := in.CreateWithEnv(keygate, env); err != nil {
		return result{}, err
	}
	lr, err := contentList(keygate, in.Args(), env, map[string]any{"provider": providerName, "type": "posts"})
	if err != nil {
		if strings.Contains(err.Error(), "provider") {
			// The cause is kept as text only, cut to 200 bytes: callers
			// test for errNoProvider.
			return result{}, fmt.Errorf("%w (content_list provider=%s: %.200s)", errNoProvider, providerName, err.Error())
		}
		return result{}, err
	}
	var want []string
	for _, o := range page.Objects {
		want = append(want, o.ID)
	}
	if got := lr.ids(); !slices.Equal(got, want) {
		return result{}, fmt.Errorf("keygate content_list on cosmic returned other objects than GET /objects: %v vs %v", got, want)
	}
	return result{name: "cosmic (fake)", raw: len(raw), text: textLen(lr), structured: len(lr.Result.Structured)}, nil
}
