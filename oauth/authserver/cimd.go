package authserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document,
// MCP authorization 2025-11-25): the client_id is an https URL, and the
// document there describes the client. Fetching a URL an anonymous caller
// chose is a server-side request forgery risk, so every fetch is bounded:
// https only, no redirects, no special-use addresses (checked on the address
// actually dialled, so DNS cannot point elsewhere after a check), a size
// and time limit, a per-address rate and a small number at once; results
// are cached within bounds, errors never.

// Defaults of CIMDConfig.
const (
	defaultDocMaxBytes   = 5 << 10 // the draft's recommended maximum
	defaultDocTimeout    = 5 * time.Second
	defaultDocMinCache   = time.Minute
	defaultDocMaxCache   = 24 * time.Hour
	defaultDocCache      = 10 * time.Minute // without cache headers
	defaultDocMaxEntries = 256
	maxDocFetchesAtOnce  = 4
	maxClientIDLen       = 512
)

type documents struct {
	http       *http.Client
	maxBytes   int64
	minCache   time.Duration
	maxCache   time.Duration
	maxEntries int
	now        func() time.Time
	perAddress *limiter
	loginURL   func(string) string
	slots      chan struct{}

	mu       sync.Mutex
	cache    map[string]cachedDoc
	inflight map[string]*docCall
}

type cachedDoc struct {
	c       *client
	expires time.Time
}

type docCall struct {
	done chan struct{}
	c    *client
	err  error
}

func newDocuments(cfg CIMDConfig, now func() time.Time, perAddress *limiter, loginURL func(string) string) *documents {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = defaultDocMaxBytes
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultDocTimeout
	}
	if cfg.MinCache <= 0 {
		cfg.MinCache = defaultDocMinCache
	}
	if cfg.MaxCache <= 0 {
		cfg.MaxCache = defaultDocMaxCache
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = defaultDocMaxEntries
	}
	return &documents{
		http:     guardedClient(cfg.TLSConfig, cfg.Timeout, cfg.AllowLoopback),
		maxBytes: cfg.MaxBytes, minCache: cfg.MinCache, maxCache: cfg.MaxCache, maxEntries: cfg.MaxEntries,
		now: now, perAddress: perAddress, loginURL: loginURL, slots: make(chan struct{}, maxDocFetchesAtOnce),
		cache: map[string]cachedDoc{}, inflight: map[string]*docCall{},
	}
}

// guardedClient fetches only from addresses that are not special-use (RFC
// 6890), loopback too when allowLoopback, never follows a redirect and
// ignores proxy settings, which would put the proxy's address where the
// check looks.
func guardedClient(tlsConfig *tls.Config, timeout time.Duration, allowLoopback bool) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("dialling %q: not an IP address", host)
		}
		if !fetchableIP(ip, allowLoopback) {
			return fmt.Errorf("refusing to fetch from %s: a special-use address", ip)
		}
		return nil
	}}
	transport := &http.Transport{
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsConfig,
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 16 << 10,
		MaxIdleConns:           4,
		IdleConnTimeout:        time.Minute,
		ForceAttemptHTTP2:      true,
	}
	return &http.Client{Transport: transport, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// specialUse are address blocks RFC 6890 and its successors reserve, beyond
// what netip's predicates name: none of them is a public web server.
var specialUse = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001::/23"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("fec0::/10"),
}

func fetchableIP(ip netip.Addr, allowLoopback bool) bool {
	ip = ip.Unmap()
	if ip.IsLoopback() {
		return allowLoopback
	}
	if !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return false
	}
	for _, p := range specialUse {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// checkClientIDURL applies the draft's rules for a Client Identifier URL:
// https, a path, no dot segments, no user, no fragment; keygate also
// refuses a query, which the draft advises against.
func checkClientIDURL(id string) error {
	if len(id) > maxClientIDLen {
		return fmt.Errorf("client_id URL is longer than %d bytes", maxClientIDLen)
	}
	u, err := url.Parse(id)
	if err != nil {
		return fmt.Errorf("client_id is not a URL: %w", err)
	}
	switch {
	case u.Scheme != "https":
		return errors.New("a client_id URL must use https")
	case u.Host == "" || u.User != nil:
		return errors.New("a client_id URL needs a host and no user name")
	case u.Path == "" || u.Path == "/":
		return errors.New("a client_id URL needs a path, such as /client.json")
	case strings.Contains(id, "#"):
		return errors.New("a client_id URL must not contain a fragment")
	case u.RawQuery != "" || u.ForceQuery:
		return errors.New("keygate does not accept a client_id URL with a query")
	}
	for seg := range strings.SplitSeq(u.EscapedPath(), "/") {
		if seg == "." || seg == ".." {
			return errors.New("a client_id URL must not contain . or .. path segments")
		}
	}
	return nil
}

// get returns the client described at id, from the cache or fetched.
func (d *documents) get(ctx context.Context, id string) (*client, error) {
	if err := checkClientIDURL(id); err != nil {
		return nil, fmt.Errorf("%w: %w", errUnknownClient, err)
	}
	now := d.now()
	d.mu.Lock()
	if e, ok := d.cache[id]; ok && now.Before(e.expires) {
		d.mu.Unlock()
		return e.c, nil
	}
	if call, ok := d.inflight[id]; ok {
		d.mu.Unlock()
		select {
		case <-call.done:
			return call.c, call.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if !d.perAddress.allow(addressFrom(ctx)) {
		d.mu.Unlock()
		return nil, fmt.Errorf("%w: too many client metadata fetches from this address; try again in a minute", errUnknownClient)
	}
	call := &docCall{done: make(chan struct{})}
	d.inflight[id] = call
	d.mu.Unlock()

	c, ttl, err := d.fetch(ctx, id)
	d.mu.Lock()
	delete(d.inflight, id)
	if err == nil {
		d.storeLocked(id, c, now.Add(ttl))
	}
	d.mu.Unlock()
	call.c, call.err = c, err
	close(call.done)
	return c, err
}

func (d *documents) storeLocked(id string, c *client, expires time.Time) {
	if len(d.cache) >= d.maxEntries {
		now := d.now()
		for k, e := range d.cache {
			if !now.Before(e.expires) {
				delete(d.cache, k)
			}
		}
		for len(d.cache) >= d.maxEntries {
			// Drop the entry closest to expiry.
			var oldest string
			for k, e := range d.cache {
				if oldest == "" || e.expires.Before(d.cache[oldest].expires) {
					oldest = k
				}
			}
			delete(d.cache, oldest)
		}
	}
	d.cache[id] = cachedDoc{c: c, expires: expires}
}

// document is the part of a Client ID Metadata Document keygate reads.
type document struct {
	ClientID                string   `json:"client_id"`
	ClientName              string   `json:"client_name"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientSecret            *string  `json:"client_secret"`
	ClientSecretExpiresAt   *int64   `json:"client_secret_expires_at"`
}

// fetch downloads and checks the metadata document at id, its URL, and
// returns the client it describes and how long it may be cached.
func (d *documents) fetch(ctx context.Context, id string) (*client, time.Duration, error) {
	select {
	case d.slots <- struct{}{}:
		defer func() { <-d.slots }()
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	body, header, err := d.download(ctx, id)
	if err != nil {
		return nil, 0, refusedDocument(id, err)
	}
	var doc document
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, 0, refusedDocument(id, fmt.Errorf("not a JSON object: %w", err))
	}
	if err := doc.check(id); err != nil {
		return nil, 0, refusedDocument(id, err)
	}
	c := &client{id: id, name: cleanName(doc.ClientName), redirectURIs: doc.RedirectURIs, authMethod: oidc.AuthMethodNone,
		fromDocument: true, loginURL: d.loginURL}
	return c, d.cacheFor(header), nil
}

// refusedDocument is errUnknownClient, naming the document and why. The
// cause is kept as text only: to a caller every refusal is an unknown
// client, whatever went wrong on the way (a network error, say).
func refusedDocument(id string, cause error) error {
	return fmt.Errorf("%w: metadata document %s: %s", errUnknownClient, id, cause.Error())
}

// download GETs the document at id: a 200 with a JSON content type, within
// the size limit. Redirects are never followed: d.http hands back the 3xx,
// which is refused here like any other status.
func (d *documents) download(ctx context.Context, id string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("fetching: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("answered %d, want 200 (redirects are not followed)", resp.StatusCode)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); !isJSONMediaType(mt) {
		return nil, nil, fmt.Errorf("content type %q, want application/json", mt)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, d.maxBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading: %w", err)
	}
	if int64(len(body)) > d.maxBytes {
		return nil, nil, fmt.Errorf("larger than %d bytes", d.maxBytes)
	}
	return body, resp.Header, nil
}

// isJSONMediaType accepts application/json and its structured-syntax
// variants such as application/example+json (RFC 6839 section 3.1).
func isJSONMediaType(mt string) bool {
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// check applies the rules for a document fetched from id: it names itself,
// has a name, is for a public client using the authorization code flow,
// and has redirect URIs keygate accepts.
func (doc document) check(id string) error {
	switch {
	case doc.ClientID != id:
		return fmt.Errorf("its client_id %q is not the URL it was fetched from", doc.ClientID)
	case strings.TrimSpace(doc.ClientName) == "":
		return errors.New("client_name is missing")
	case doc.ClientSecret != nil || doc.ClientSecretExpiresAt != nil:
		return errors.New("a metadata document must not carry client_secret")
	case doc.TokenEndpointAuthMethod == "private_key_jwt":
		return errors.New("token_endpoint_auth_method private_key_jwt is not supported by keygate; use none")
	case doc.TokenEndpointAuthMethod != "" && doc.TokenEndpointAuthMethod != "none":
		return fmt.Errorf("token_endpoint_auth_method %q is not allowed for a metadata document; use none", doc.TokenEndpointAuthMethod)
	case len(doc.GrantTypes) > 0 && !slices.Contains(doc.GrantTypes, "authorization_code"):
		return errors.New("grant_types must include authorization_code")
	case len(doc.ResponseTypes) > 0 && !slices.Contains(doc.ResponseTypes, "code"):
		return errors.New("response_types must include code")
	}
	return checkRedirectURIs(doc.RedirectURIs)
}

// cacheFor reads Cache-Control's max-age (RFC 9111 section 5.2.2.1),
// within the configured bounds; no-store and no-cache give the minimum.
func (d *documents) cacheFor(h http.Header) time.Duration {
	ttl := defaultDocCache
	for _, directive := range strings.Split(strings.ToLower(h.Get("Cache-Control")), ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
		switch name {
		case "no-store", "no-cache":
			return d.minCache
		case "max-age":
			if n, err := strconv.Atoi(strings.Trim(value, `"`)); err == nil && n >= 0 {
				ttl = time.Duration(n) * time.Second
			}
		}
	}
	return min(max(ttl, d.minCache), d.maxCache)
}
