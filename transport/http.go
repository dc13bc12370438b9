// Package transport serves keygate's MCP server over stdio and streamable
// HTTP. The HTTP side adds what mcp-go leaves to us: an Origin allow-list
// and CORS for the origins on it, bearer authentication (keygate tokens and,
// when OAuth is on, access tokens), request-body limits, insufficient_scope
// answers with OAuth challenges, session ids bound to the credential that
// opened them, a health endpoint, and the routes OAuth adds beside /mcp
// (metadata documents, the authorization server).
package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/identity"
	"github.com/keygate/keygate/oauth"
)

// DefaultMaxBodyBytes caps a request body; MCP requests are small.
const DefaultMaxBodyBytes = 1 << 20

// maxInflight bounds the POSTs served at once; past it keygate answers
// 503 with Retry-After rather than queue without limit (docs/SECURITY.md
// row 12). GET streams are long-lived and bounded by the stream caps in
// session.go.
const maxInflight = 256

// maxListensPerKey bounds the 2026-07-28 subscriptions/listen POSTs one key
// holds open, as maxStreamsPerKey bounds its GET streams: each holds one
// of the maxInflight slots for as long as its client stays, so without it
// one key could take them all and leave every other caller 503.
const maxListensPerKey = maxStreamsPerKey

// maxAuthHeader caps the Authorization header before any parsing or
// hashing, so junk tokens cost nothing: enough for a keygate token.
// HTTPConfig.MaxAuthHeader raises it for OAuth access tokens.
const maxAuthHeader = 512

// CORS for browser-based clients of /mcp (MCP transports: the session and
// protocol version headers; Last-Event-ID resumes a stream) and of the
// OAuth routes that browser clients call.
const (
	corsMCPMethods     = "GET, POST, DELETE, OPTIONS"
	corsMCPHeaders     = "Authorization, Content-Type, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID"
	corsRouteMethods   = "GET, HEAD, POST, OPTIONS"
	corsRouteHeaders   = "Authorization, Content-Type, Mcp-Protocol-Version"
	corsExposedHeaders = "Mcp-Session-Id, WWW-Authenticate"
	corsMaxAge         = "600"
)

// Verifier checks a keygate token.
type Verifier interface {
	Verify(ctx context.Context, token string) (auth.Principal, error)
}

// ScopeCheck says which action a tool needs and whether principal p holds
// it. ok is false for unknown tools, which mcp-go answers. keygate's tool
// layer provides it (tools.ScopeCheckFor), so the HTTP answer and the tool's
// own refusal come from the same decision.
type ScopeCheck func(p auth.Principal, tool string) (need auth.Action, allowed, ok bool)

// Challenger builds the WWW-Authenticate values of /mcp's 401 and 403
// answers when /mcp is an OAuth protected resource; oauth.Resource is one.
type Challenger interface {
	Challenge(scopes []string) string
	InvalidTokenChallenge(description string, scopes []string) string
	InvalidRequestChallenge(description string, scopes []string) string
	InsufficientScopeChallenge(needed []string, description string) string
}

// Route is a handler served beside /mcp, outside its Origin guard and
// bearer check: the OAuth metadata documents and the authorization server,
// whose authorize and consent pages are top-level browser navigations (the
// consent page protects its form itself).
type Route struct {
	Pattern string // as http.ServeMux takes it
	Handler http.Handler
	// CORS marks a route that browser-based clients call (metadata
	// documents, token, registration, revocation): requests from the
	// origins allowed on /mcp get CORS headers there. Every other CORS
	// header a route's handler sets is dropped, so the allow-list is the
	// only CORS policy.
	CORS bool
}

// HTTPConfig configures the streamable HTTP transport.
type HTTPConfig struct {
	Addr           string
	AllowedOrigins []string // in addition to the server's own loopback origins
	MaxBodyBytes   int64
	Verifier       Verifier
	ScopeCheck     ScopeCheck
	Logger         *slog.Logger
	Version        string
	// Challenges, when set, makes /mcp an OAuth protected resource: every
	// 401 and 403 names its metadata (RFC 9728 section 5.1). nil keeps the
	// plain Bearer realm challenge of keygate tokens alone.
	Challenges Challenger
	// ChallengeScopes are the scopes a 401 tells a client to ask for.
	ChallengeScopes []string
	// Routes are served beside /mcp.
	Routes []Route
	// MaxAuthHeader caps the Authorization header; 0 is 512 bytes, enough
	// for a keygate token. OAuth access tokens need more.
	MaxAuthHeader int
	// TLSCert and TLSKey, when set, serve HTTPS.
	TLSCert, TLSKey string
	// OnSessionEnd is called when a session ends: deleted, expired, or
	// evicted past a cap.
	OnSessionEnd func(sessionID string)
	// Stateless serves /mcp without sessions, for replicas behind a load
	// balancer that may send each request to another process: initialize
	// issues no Mcp-Session-Id, every POST stands alone (its answer, and
	// any notification during it, come on its own response), and GET and
	// DELETE get 405, as the spec lets a server without a stream or
	// sessions answer. Nothing is held between requests, so there is
	// nothing for one replica to know of another's.
	Stateless bool
	// BehindProxy says every connection comes from a reverse proxy, so
	// connections are not bounded per client address.
	BehindProxy bool
	// Ready, when set, is asked by /healthz whether the store can be
	// reached; an error makes it answer 503.
	Ready func(context.Context) error
	// OnAuthFailure is told of every refused bearer token (for the audit
	// journal); reason is a code such as "invalid_token", never the token.
	OnAuthFailure func(r *http.Request, reason string)
}

// NewHTTPHandler returns the keygate HTTP handler: /mcp and /healthz.
func NewHTTPHandler(s *server.MCPServer, cfg HTTPConfig, ownOrigins []string) http.Handler {
	_, mux := newHTTPHandler(s, cfg, ownOrigins)
	return mux
}

func newHTTPHandler(s *server.MCPServer, cfg HTTPConfig, ownOrigins []string) (*httpHandler, http.Handler) {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	h := &httpHandler{cfg: cfg, inflight: make(chan struct{}, maxInflight), listens: map[string]int{},
		readers: newBodyReaders(maxReaders, maxReadersPerKey)}
	h.sessions = newSessionManager(func(id string) {
		h.releaseMCP(id)
		if cfg.OnSessionEnd != nil {
			cfg.OnSessionEnd(id)
		}
	})
	sessions := server.WithSessionIdManagerResolver(h.sessions)
	if cfg.Stateless {
		sessions = server.WithStateLess(true)
	}
	h.mcp = server.NewStreamableHTTPServer(s,
		// mcp-go's own lines (a client response to no request, a failed
		// SSE write) go through keygate's logger and its redactor, in
		// keygate's format; without it they go to slog.Default, as text.
		server.WithStreamableHTTPLogger(cfg.Logger),
		sessions,
		server.WithHTTPContextFunc(func(ctx context.Context, r *http.Request) context.Context {
			// The bearer token was verified once, in bearer: the tools
			// take that verification rather than repeat it.
			if p, c, ok := identity.VerifiedFrom(r.Context()); ok {
				ctx = identity.WithVerified(ctx, p, c)
			}
			return ctx
		}),
	)
	h.allowed = map[string]bool{}
	for _, o := range append(ownOrigins, cfg.AllowedOrigins...) {
		h.allowed[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	if h.cfg.MaxAuthHeader <= 0 {
		h.cfg.MaxAuthHeader = maxAuthHeader
	}
	mux := http.NewServeMux()
	methods, sessionsMW := allowedMethods, h.bindSession
	if cfg.Stateless {
		methods, sessionsMW = statelessMethods, noSessions
	}
	// A POST's body is read (limitAndScope) before it takes one of the
	// maxInflight slots (shed): a key that sends bodies slowly waits in
	// its own reading bound, not in the slots every caller shares.
	mux.Handle("/mcp", h.originGuard(allowMethods(methods, h.bearer(h.limitAndScope(h.shed(h.checkMessage(sessionsMW(h.mcp))))))))
	mux.HandleFunc("GET /healthz", h.healthz)
	for _, rt := range cfg.Routes {
		mux.Handle(rt.Pattern, h.hostGuard(h.cors(rt)))
	}
	return h, mux
}

type httpHandler struct {
	inflight chan struct{} // one token per POST being served
	// listens counts each key's open subscriptions/listen POSTs: one of
	// them stays open, holding a POST slot, as long as its client does.
	listensMu sync.Mutex
	listens   map[string]int
	readers   *bodyReaders // bounds the request bodies being read
	cfg       HTTPConfig
	sessions  *sessionManager
	allowed   map[string]bool
	mcp       *server.StreamableHTTPServer
}

func (h *httpHandler) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if h.cfg.Ready != nil {
		if err := h.cfg.Ready(r.Context()); err != nil {
			// A load balancer's health check takes this replica out of
			// rotation until its store is back; the cause is logged, not
			// shown to whoever asks.
			h.cfg.Logger.Warn("health check: store unavailable", "err", err)
			w.Header().Set("Retry-After", storeRetryAfter)
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "unavailable", "error": "the store cannot be reached", "version": h.cfg.Version})
			return
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok", "version": h.cfg.Version})
}

// storeRetryAfter is the Retry-After, in seconds, of an answer given while
// the store cannot be reached.
const storeRetryAfter = "2"

// originGuard answers 403 to a request whose Origin header is present and
// not allowed (MCP transports spec; mcp-go checks only Host). "null" and
// malformed origins are never allowed. Requests without Origin come from
// non-browser clients and pass.
//
// A request from an allowed origin gets CORS headers, and its preflight is
// answered here, before authentication: a browser sends it without the
// Authorization header it asks about.
func (h *httpHandler) originGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origins := r.Header.Values("Origin")
		if len(origins) > 1 || (len(origins) == 1 && !h.allowedOrigin(origins[0])) {
			h.cfg.Logger.Warn("refused request from a disallowed origin", "remote", r.RemoteAddr)
			writeJSONRPCError(w, http.StatusForbidden, nil, -32600, "forbidden: origin not allowed")
			return
		}
		if len(origins) == 1 {
			allowCORS(w.Header(), origins[0])
			if isPreflight(r) {
				preflightAnswer(w, corsMCPMethods, corsMCPHeaders)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (h *httpHandler) allowedOrigin(o string) bool {
	return h.allowed[strings.ToLower(strings.TrimSuffix(o, "/"))]
}

// isPreflight reports whether r is a CORS preflight (Fetch standard).
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
}

// allowCORS lets the page at origin read the response, and its
// WWW-Authenticate challenge and session id. No credentials mode: a bearer
// token is a header the page sets, not a cookie.
func allowCORS(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", corsExposedHeaders)
	h.Add("Vary", "Origin")
}

func preflightAnswer(w http.ResponseWriter, methods, headers string) {
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", methods)
	h.Set("Access-Control-Allow-Headers", headers)
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
}

// cors applies the allow-list to a route: an allowed origin gets CORS on a
// CORS route (its preflight answered here); any other request gets no CORS
// header at all, whatever the route's handler set (the authorization
// server's library allows every origin, the metadata handler "*").
func (h *httpHandler) cors(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &corsWriter{ResponseWriter: w}
		if origins := r.Header.Values("Origin"); rt.CORS && len(origins) == 1 && h.allowedOrigin(origins[0]) {
			cw.origin = origins[0]
			if isPreflight(r) {
				allowCORS(w.Header(), cw.origin)
				preflightAnswer(w, corsRouteMethods, corsRouteHeaders)
				return
			}
		}
		rt.Handler.ServeHTTP(cw, r)
	})
}

// corsWriter replaces a handler's CORS headers with the allow-list's
// (origin, or none) as the response starts.
type corsWriter struct {
	http.ResponseWriter
	origin string
	wrote  bool
}

func (c *corsWriter) WriteHeader(code int) {
	if !c.wrote {
		c.wrote = true
		h := c.Header()
		for k := range h {
			if strings.HasPrefix(k, "Access-Control-") {
				delete(h, k)
			}
		}
		if c.origin != "" {
			allowCORS(h, c.origin)
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *corsWriter) Write(p []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(p)
}

func (c *corsWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// hostGuard refuses, on a loopback connection, a Host that is not a
// loopback name: a page whose domain was rebound to 127.0.0.1 (DNS
// rebinding) reaches keygate's routes under its own origin otherwise.
// mcp-go applies the same rule to /mcp.
func (h *httpHandler) hostGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		if ok && IsLoopback(local.String()) && !oauth.IsLoopbackHost(hostOnly(r.Host)) {
			h.cfg.Logger.Warn("refused a request for a foreign Host on a loopback connection", "remote", r.RemoteAddr)
			http.Error(w, "forbidden: this Host is not served on loopback", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostOnly is host without its port.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// bearer authenticates every request with a keygate token. Every failure
// is the same 401, and the reason is logged with the token's public id at
// most, never the token.
func (h *httpHandler) bearer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("access_token") {
			h.refused(r, "token_in_query")
			h.unauthorized(w, "invalid_request", "tokens are accepted only in the Authorization header")
			return
		}
		values := r.Header.Values("Authorization")
		if len(values) == 0 {
			h.refused(r, "missing_token")
			h.unauthorized(w, "", "")
			return
		}
		tok, ok := parseBearer(values, h.cfg.MaxAuthHeader)
		if !ok {
			h.refused(r, "malformed_authorization")
			h.unauthorized(w, "invalid_request", "send exactly one Authorization: Bearer <token> header")
			return
		}
		p, err := h.cfg.Verifier.Verify(r.Context(), tok)
		switch {
		case errors.Is(err, auth.ErrInvalidToken):
			h.cfg.Logger.Info("refused invalid bearer token", "remote", r.RemoteAddr)
			h.refused(r, "invalid_token")
			h.unauthorized(w, "invalid_token", "the token is invalid, expired or revoked")
			return
		case err != nil:
			// Fail closed: a store we cannot read admits no one. The
			// client may retry soon, on this replica or another.
			h.cfg.Logger.Error("cannot verify bearer token", "err", err)
			w.Header().Set("Retry-After", storeRetryAfter)
			writeJSONRPCError(w, http.StatusServiceUnavailable, nil, -32603,
				"credential store unavailable: keygate cannot reach its store to check the token; retry in a few seconds (the operator can see why in keygate's log)")
			return
		}
		p.Source = auth.SourceBearer
		ctx := identity.WithVerified(r.Context(), p, auth.Credential{Secret: auth.NewSecret(tok), Source: auth.SourceBearer})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func parseBearer(values []string, limit int) (string, bool) {
	if len(values) != 1 || len(values[0]) > limit {
		return "", false
	}
	scheme, tok, ok := strings.Cut(values[0], " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t,") {
		return "", false
	}
	return tok, true
}

func (h *httpHandler) refused(r *http.Request, reason string) {
	if h.cfg.OnAuthFailure != nil {
		h.cfg.OnAuthFailure(r, reason)
	}
}

func (h *httpHandler) unauthorized(w http.ResponseWriter, code, desc string) {
	challenge := `Bearer realm="keygate"`
	if code != "" {
		challenge += fmt.Sprintf(`, error=%q, error_description=%q`, code, desc)
	}
	msg := "unauthorized: send Authorization: Bearer <keygate token>"
	if c := h.cfg.Challenges; c != nil {
		switch code {
		case "":
			challenge = c.Challenge(h.cfg.ChallengeScopes)
		case "invalid_token":
			challenge = c.InvalidTokenChallenge(desc, h.cfg.ChallengeScopes)
		default:
			challenge = c.InvalidRequestChallenge(desc, h.cfg.ChallengeScopes)
		}
		msg = "unauthorized: send Authorization: Bearer <keygate token or OAuth access token>; WWW-Authenticate names where to get one"
	}
	w.Header().Set("WWW-Authenticate", challenge)
	if desc != "" {
		msg = "unauthorized: " + desc
	}
	writeJSONRPCError(w, http.StatusUnauthorized, nil, -32001, msg)
}

// shed refuses a POST when maxInflight are already being served.
func (h *httpHandler) shed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		select {
		case h.inflight <- struct{}{}:
			defer func() { <-h.inflight }()
			next.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			writeJSONRPCError(w, http.StatusServiceUnavailable, nil, -32603, "keygate is busy; retry in a second")
		}
	})
}

// takeListen counts one more open subscriptions/listen POST of keyID, or
// reports false when the key already holds maxListensPerKey.
func (h *httpHandler) takeListen(keyID string) bool {
	h.listensMu.Lock()
	defer h.listensMu.Unlock()
	if h.listens[keyID] >= maxListensPerKey {
		return false
	}
	h.listens[keyID]++
	return true
}

func (h *httpHandler) releaseListen(keyID string) {
	h.listensMu.Lock()
	defer h.listensMu.Unlock()
	if h.listens[keyID]--; h.listens[keyID] <= 0 {
		delete(h.listens, keyID)
	}
}

// limitAndScope caps the body (413, also for chunked bodies without a
// Content-Length) and, for tools/call, answers 403 insufficient_scope before
// the tool runs when the caller's key lacks the tool's scope.
func (h *httpHandler) limitAndScope(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > h.cfg.MaxBodyBytes {
			writeJSONRPCError(w, http.StatusRequestEntityTooLarge, nil, -32600, fmt.Sprintf("request body over %d bytes", h.cfg.MaxBodyBytes))
			return
		}
		p, _, _ := identity.VerifiedFrom(r.Context())
		release, err := h.readers.take(r.Context(), p.KeyID)
		if err != nil {
			return // the client went away while waiting
		}
		body, err := readBody(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes), r.ContentLength)
		release()
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeJSONRPCError(w, http.StatusRequestEntityTooLarge, nil, -32600, fmt.Sprintf("request body over %d bytes", h.cfg.MaxBodyBytes))
				return
			}
			writeJSONRPCError(w, http.StatusBadRequest, nil, -32700, "cannot read request body")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Name string `json:"name"`
			} `json:"params"`
		}
		decoded := json.Unmarshal(body, &msg) == nil
		if decoded && msg.Method == "subscriptions/listen" {
			if !h.takeListen(p.KeyID) {
				w.Header().Set("Retry-After", "1")
				writeJSONRPCError(w, http.StatusTooManyRequests, msg.ID, -32603,
					fmt.Sprintf("too many open subscriptions: this key already holds %d subscriptions/listen requests, the most it may; close one, then retry", maxListensPerKey))
				return
			}
			defer h.releaseListen(p.KeyID)
		}
		if decoded && msg.Method == "tools/call" && h.cfg.ScopeCheck != nil {
			if need, allowed, known := h.cfg.ScopeCheck(p, msg.Params.Name); known && !allowed {
				challenge := fmt.Sprintf(`Bearer realm="keygate", error="insufficient_scope", scope=%q`, string(need))
				if c := h.cfg.Challenges; c != nil {
					challenge = c.InsufficientScopeChallenge(neededScopes(p.Scopes, need), fmt.Sprintf("%s needs %s", msg.Params.Name, need))
				}
				w.Header().Set("WWW-Authenticate", challenge)
				writeJSONRPCError(w, http.StatusForbidden, msg.ID, -32003,
					fmt.Sprintf("insufficient_scope: %s needs %s", msg.Params.Name, need))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// neededScopes are the scopes a client should ask for to call a tool that
// needs act: those it holds, so asking again loses none of them (MCP
// authorization, "Runtime Insufficient Scope Errors"), and act.
func neededScopes(held auth.Scopes, act auth.Action) []string {
	out := held.Strings()
	if !slices.Contains(out, string(act)) {
		out = append(out, string(act))
	}
	return out
}

// readBody reads all of body. A declared length, already checked against
// the cap, sizes the buffer, so a request is read in one allocation rather
// than grown from 512 bytes; a body that does not match it is still read
// whole. Only up to preallocMax is allocated ahead of the bytes arriving,
// so a length that is declared but never sent cannot pin much memory.
func readBody(body io.Reader, declared int64) ([]byte, error) {
	if declared <= 0 || declared > preallocMax {
		return io.ReadAll(body)
	}
	buf := make([]byte, declared+1) // one byte more, to see the end
	n, err := io.ReadFull(body, buf)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return buf[:n], nil
	case err != nil:
		return nil, err
	}
	rest, err := io.ReadAll(body)
	return append(buf, rest...), err
}

// preallocMax bounds what readBody allocates before the body arrives; MCP
// requests are far smaller.
const preallocMax = 64 << 10

// bindSession ties a session id to the key that opened it: presenting
// someone else's session id gets the same 404 as an unknown one. It gives
// mcp-go a session id manager that charges new sessions to the caller's
// key, and bounds GET streams.
func (h *httpHandler) bindSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := requestInfoFrom(r.Context())
		if info.modern {
			// 2026-07-28 has no sessions: mcp-go ignores Mcp-Session-Id on
			// a POST and answers GET and DELETE with 405.
			next.ServeHTTP(w, r)
			return
		}
		p, _, _ := identity.VerifiedFrom(r.Context())
		sid := r.Header.Get(server.HeaderKeySessionID)
		switch {
		case r.Method == http.MethodGet || r.Method == http.MethodDelete:
			// A stream or an end needs a session this key opened: no
			// session-less streams, no guessing, no ending another's.
			if sid == "" {
				writeJSONRPCError(w, http.StatusBadRequest, nil, -32600, "Mcp-Session-Id header required")
				return
			}
			if r.Method == http.MethodGet {
				h.serveStream(next, w, r, sid, p.KeyID)
				return
			}
			if !h.sessions.liveOwnedBy(sid, p.KeyID) {
				writeJSONRPCError(w, http.StatusNotFound, nil, -32001, "session not found")
				return
			}
		case sid != "" && !h.sessions.ownedBy(sid, p.KeyID):
			writeJSONRPCError(w, http.StatusNotFound, nil, -32001, "session not found")
			return
		}
		rs := &requestSessions{m: h.sessions, keyID: p.KeyID, version: info.initVersion}
		bw := &bindingWriter{ResponseWriter: w}
		next.ServeHTTP(bw, r.WithContext(context.WithValue(r.Context(), requestSessionsKey{}, rs)))
		if rs.issued != "" && !h.sessions.settle(rs.issued, bw.sid == rs.issued) {
			h.releaseMCP(rs.issued)
		}
	})
}

// serveStream serves a GET stream within the stream caps, and releases it
// when the client goes away, the session ends or a newer stream replaces it.
func (h *httpHandler) serveStream(next http.Handler, w http.ResponseWriter, r *http.Request, sid, keyID string) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	st, err := h.sessions.openStream(sid, keyID, cancel)
	if err != nil {
		status, msg := h.sessions.streamRefusal(err)
		if status != http.StatusNotFound {
			h.cfg.Logger.Warn("refused a GET stream past its cap", "remote", r.RemoteAddr, "status", status)
			w.Header().Set("Retry-After", streamRetryAfter)
		}
		writeJSONRPCError(w, status, nil, -32001, msg)
		return
	}
	defer h.sessions.closeStream(st)
	next.ServeHTTP(w, r.WithContext(ctx))
}

// releaseMCP frees what mcp-go holds for a session keygate ended: its
// registration, its transport session and its per-session tools,
// resources, templates and log level. mcp-go frees these only on a DELETE,
// in its own idle sweeper (not used: it knows nothing of keygate's caps)
// or for every session at once (docs/http-sessions.md), so keygate sends
// mcp-go the DELETE a polite client would have. mcp-go asks the session
// manager to Terminate the id first, a no-op for an ended session.
func (h *httpHandler) releaseMCP(id string) {
	req := &http.Request{Method: http.MethodDelete, URL: &url.URL{Path: "/mcp"}, Header: http.Header{}}
	req.Header.Set(server.HeaderKeySessionID, id)
	var rec statusRecorder
	h.mcp.ServeHTTP(&rec, req)
	if rec.status != http.StatusOK {
		h.cfg.Logger.Error("mcp-go did not release an ended session", "status", rec.status)
	}
}

// statusRecorder is the response writer of releaseMCP: only the status
// matters.
type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header {
	if s.header == nil {
		s.header = http.Header{}
	}
	return s.header
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	s.WriteHeader(http.StatusOK)
	return len(p), nil
}

// bindingWriter records the session id mcp-go hands out on initialize,
// when the answer carrying it is a success.
type bindingWriter struct {
	http.ResponseWriter
	sid   string
	wrote bool
}

func (b *bindingWriter) WriteHeader(code int) {
	if !b.wrote {
		b.wrote = true
		if code < 300 {
			b.sid = b.Header().Get(server.HeaderKeySessionID)
		}
	}
	b.ResponseWriter.WriteHeader(code)
}

func (b *bindingWriter) Write(p []byte) (int, error) {
	if !b.wrote {
		b.WriteHeader(http.StatusOK)
	}
	return b.ResponseWriter.Write(p)
}

func (b *bindingWriter) Flush() {
	if f, ok := b.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (b *bindingWriter) Unwrap() http.ResponseWriter { return b.ResponseWriter }

func writeJSONRPCError(w http.ResponseWriter, status int, id json.RawMessage, code int, msg string) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": code, "message": msg},
	})
}

// OwnOrigins are the origins a browser page served by keygate itself would
// send: the loopback names with the listening port.
func OwnOrigins(addr net.Addr) []string {
	_, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return nil
	}
	return []string{
		"http://127.0.0.1:" + port, "http://localhost:" + port, "http://[::1]:" + port,
	}
}

// IsLoopback reports whether a listen address binds loopback only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ServeHTTP listens on cfg.Addr and serves until ctx is done, then shuts
// down gracefully, letting in-flight requests finish for up to 10 s.
func ServeHTTP(ctx context.Context, s *server.MCPServer, cfg HTTPConfig, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Addr, err)
	}
	return Serve(ctx, ln, s, cfg, ready)
}

// Serve serves on ln, as ServeHTTP does, for a caller that listened
// itself (keygate's public URL may depend on the port it got). It closes
// ln.
func Serve(ctx context.Context, ln net.Listener, s *server.MCPServer, cfg HTTPConfig, ready func(net.Addr)) error {
	h, handler := newHTTPHandler(s, cfg, OwnOrigins(ln.Addr()))
	perHost := maxConnsPerHost
	if cfg.BehindProxy {
		perHost = 0
	}
	ln = newLimitListener(ln, maxConns, perHost)
	go h.sessions.sweepPeriodically(ctx, sweepEvery)
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			errc <- srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down HTTP: %w", err)
	}
	return nil
}

// MCPURL is the endpoint clients connect to.
func MCPURL(addr net.Addr) string {
	return (&url.URL{Scheme: "http", Host: addr.String(), Path: "/mcp"}).String()
}
