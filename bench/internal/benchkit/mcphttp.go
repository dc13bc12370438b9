package benchkit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/internal/mcpwire"
)

// ToolCallBody is a tools/call request with the given id.
func ToolCallBody(id int, name string, args any) ([]byte, error) {
	params, err := json.Marshal(map[string]any{"name": name, "arguments": args})
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":%s}`, id, params), nil
}

// HTTPClient talks raw streamable HTTP to one MCP endpoint.
type HTTPClient struct {
	HTTP  *http.Client
	URL   string
	Token string // sent as Authorization: Bearer when set
}

// NewHTTPClient returns a client keeping up to conns connections alive.
func NewHTTPClient(url, token string, conns int) *HTTPClient {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns + 4,
		MaxIdleConnsPerHost: conns + 4,
		MaxConnsPerHost:     0,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &HTTPClient{HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second}, URL: url, Token: token}
}

// Close drops idle connections.
func (c *HTTPClient) Close() { c.HTTP.CloseIdleConnections() }

// Session is one MCP session over streamable HTTP.
type Session struct {
	c      *HTTPClient
	ID     string
	nextID int
}

// Post sends one JSON-RPC message and returns the status and the full
// response: the JSON body, or for an SSE stream the data of the event
// that carries the response.
func (c *HTTPClient) Post(ctx context.Context, sid string, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, resp.Header, nil, err
	}
	if ct := resp.Header.Get("Content-Type"); len(ct) >= 17 && ct[:17] == "text/event-stream" {
		b = mcpwire.SSEResponse(b)
	}
	return resp.StatusCode, resp.Header, b, nil
}

// Open initializes a session and sends notifications/initialized.
func (c *HTTPClient) Open(ctx context.Context) (*Session, error) {
	status, h, b, err := c.Post(ctx, "", []byte(InitializeLine))
	if err != nil {
		return nil, fmt.Errorf("initialize: %w", err)
	}
	if status != http.StatusOK || !bytes.Contains(b, []byte(`"result"`)) {
		return nil, fmt.Errorf("initialize: status %d: %.300s", status, b)
	}
	s := &Session{c: c, ID: h.Get("Mcp-Session-Id"), nextID: 2}
	status, _, b, err = c.Post(ctx, s.ID, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`))
	if err != nil {
		return nil, fmt.Errorf("notifications/initialized: %w", err)
	}
	if status >= 300 {
		return nil, fmt.Errorf("notifications/initialized: status %d: %.300s", status, b)
	}
	return s, nil
}

// CallTool sends tools/call and returns the JSON-RPC response.
func (s *Session) CallTool(ctx context.Context, name string, args any) ([]byte, error) {
	body, err := ToolCallBody(s.nextID, name, args)
	if err != nil {
		return nil, err
	}
	s.nextID++
	status, _, b, err := s.c.Post(ctx, s.ID, body)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return b, fmt.Errorf("%s: status %d: %.300s", name, status, b)
	}
	return b, nil
}

// Close ends the session with DELETE.
func (s *Session) Close(ctx context.Context) {
	if s.ID == "" {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, s.c.URL, nil)
	if err != nil {
		return
	}
	req.Header.Set("Mcp-Session-Id", s.ID)
	if s.c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.c.Token)
	}
	if resp, err := s.c.HTTP.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// ToolOK reports whether a tools/call response is a successful result.
func ToolOK(resp []byte) bool {
	return bytes.Contains(resp, []byte(`"result"`)) && !bytes.Contains(resp, []byte(`"isError":true`))
}

// LoadResult is one load run.
type LoadResult struct {
	Sessions int
	Calls    int // completed calls, errors included
	Errors   int
	FirstErr string
	Elapsed  time.Duration
	Lat      []time.Duration // of successful calls
}

// Rate is completed calls per second.
func (r LoadResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Calls) / r.Elapsed.Seconds()
}

// LoadOptions bounds a load run.
type LoadOptions struct {
	Sessions int
	Calls    int           // total calls across sessions
	MaxTime  time.Duration // stop early after this long
	Warmup   int           // untimed calls per session before the clock starts
	Tool     string
	Args     any
	// During, when set, is called every 50 ms while the timed calls run.
	During func()
}

// RunLoad opens one session per worker (initialize + initialized), warms
// each up, then runs back-to-back tools/call until opts.Calls calls are done
// or opts.MaxTime has passed, reading every full response.
func RunLoad(c *HTTPClient, opts LoadOptions) (LoadResult, error) {
	ctx := context.Background()
	sessions := make([]*Session, opts.Sessions)
	for i := range sessions {
		s, err := c.Open(ctx)
		if err != nil {
			return LoadResult{}, err
		}
		sessions[i] = s
		for range opts.Warmup {
			b, err := s.CallTool(ctx, opts.Tool, opts.Args)
			if err != nil {
				return LoadResult{}, fmt.Errorf("warm-up: %w", err)
			}
			if !ToolOK(b) {
				return LoadResult{}, fmt.Errorf("warm-up %s: not a successful result: %.400s", opts.Tool, b)
			}
		}
	}
	defer func() {
		for _, s := range sessions {
			s.Close(ctx)
		}
	}()

	// Pre-encode the bodies: the loop then costs the client only the
	// request itself. JSON-RPC ids stay unique within a session.
	params, err := json.Marshal(map[string]any{"name": opts.Tool, "arguments": opts.Args})
	if err != nil {
		return LoadResult{}, err
	}
	prefix := []byte(`{"jsonrpc":"2.0","method":"tools/call","params":` + string(params) + `,"id":`)

	var claimed atomic.Int64
	var mu sync.Mutex
	res := LoadResult{Sessions: opts.Sessions}
	deadline := time.Now().Add(opts.MaxTime)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, opts.Calls/opts.Sessions+16)
			calls, errs := 0, 0
			firstErr := ""
			buf := make([]byte, 0, len(prefix)+24)
			<-start
			for claimed.Add(1) <= int64(opts.Calls) {
				if time.Now().After(deadline) {
					break
				}
				buf = append(append(buf[:0], prefix...), strconv.Itoa(s.nextID)+"}"...)
				s.nextID++
				t0 := time.Now()
				status, _, b, err := s.c.Post(ctx, s.ID, buf)
				d := time.Since(t0)
				calls++
				if err != nil || status != http.StatusOK || !ToolOK(b) {
					errs++
					if firstErr == "" {
						firstErr = fmt.Sprintf("status %d err %v: %.300s", status, err, b)
					}
					continue
				}
				lat = append(lat, d)
			}
			mu.Lock()
			res.Calls += calls
			res.Errors += errs
			res.Lat = append(res.Lat, lat...)
			if res.FirstErr == "" {
				res.FirstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	t0 := time.Now()
	close(start)
	go func() {
		defer close(sampled)
		if opts.During == nil {
			return
		}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				opts.During()
			}
		}
	}()
	wg.Wait()
	res.Elapsed = time.Since(t0)
	close(stopSampling)
	<-sampled
	return res, nil
}

// SeededPostID lists posts through keygate and returns the first id.
func SeededPostID(c *HTTPClient) (string, error) {
	ctx := context.Background()
	s, err := c.Open(ctx)
	if err != nil {
		return "", err
	}
	defer s.Close(ctx)
	b, err := s.CallTool(ctx, "content_list", map[string]any{"type": "posts", "limit": 1})
	if err != nil {
		return "", err
	}
	var resp struct {
		Result struct {
			Structured struct {
				Objects []struct {
					ID string `json:"id"`
				} `json:"objects"`
			} `json:"structuredContent"`
		} `json:"result"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return "", fmt.Errorf("content_list: %w: %.300s", err, b)
	}
	if len(resp.Result.Structured.Objects) == 0 {
		return "", errors.New("content_list returned no posts: " + string(b[:min(len(b), 300)]))
	}
	return resp.Result.Structured.Objects[0].ID, nil
}
