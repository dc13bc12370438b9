package authserver

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/provider/local"
)

// Dynamic client registration (RFC 7591). Anyone may register, so the
// server bounds it: a rate per client address, a cap on clients that hold
// no live grant, and their expiry (local.ClientLimits); a registration
// costs one row, and only the first grant makes a client last.

// registration is the part of RFC 7591 section 2 client metadata keygate
// reads. Other fields are ignored, as section 3.2.1 allows.
type registration struct {
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name"`
}

// registered is the response of section 3.2.1.
type registered struct {
	ClientID                string   `json:"client_id"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientSecretExpiresAt   *int64   `json:"client_secret_expires_at,omitempty"`
	ClientName              string   `json:"client_name"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
}

// clientSecretPrefix gives client secrets the shape keygate's redactor
// masks (auth.NewRedactor).
const clientSecretPrefix = "kg_cs_"

func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	if preflight(w, r, http.MethodPost) {
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_metadata", "send the client metadata as application/json (RFC 7591 section 3.1)")
		return
	}
	if !s.registerLimit.allow(addressFrom(ctx)) {
		s.refuse(ctx, "oauth.register", "", "registrations over the per-address limit")
		w.Header().Set("Retry-After", "3600")
		writeOAuthError(w, http.StatusTooManyRequests, "temporarily_unavailable",
			fmt.Sprintf("this address has registered %d clients in the last hour, the most allowed; reuse a client_id you registered", s.cfg.Limits.Register))
		return
	}
	var req registration
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&req); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_metadata", "the body is not a JSON object of client metadata")
		return
	}
	c, secret, err := s.newClient(req)
	if err != nil {
		code := "invalid_client_metadata"
		if strings.HasPrefix(err.Error(), "redirect_uris") {
			code = "invalid_redirect_uri"
		}
		writeOAuthError(w, http.StatusBadRequest, code, err.Error())
		return
	}
	stored, err := s.cfg.Store.RegisterOAuthClient(ctx, c.asLocal(),
		local.ClientLimits{MaxIdle: s.cfg.Limits.MaxIdleClients, IdleTTL: s.cfg.Limits.IdleClientTTL})
	if errors.Is(err, local.ErrTooManyClients) {
		s.refuse(ctx, "oauth.register", "", "registration refused: too many idle clients")
		w.Header().Set("Retry-After", "3600")
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable",
			"too many registered clients are waiting for their first grant; try again later")
		return
	}
	if err != nil {
		s.cfg.Logger.ErrorContext(ctx, "oauth: registering client", "err", err)
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "the client could not be stored")
		return
	}
	s.record(audit.Record{Tool: "oauth.register", Target: "client:" + c.id, Outcome: audit.OutcomeOK, Remote: addressFrom(ctx),
		Detail: fmt.Sprintf("client %q registered, auth %s, redirect URIs %s", c.name, c.authMethod, strings.Join(c.redirectURIs, " "))})
	resp := registered{ClientID: c.id, ClientSecret: secret, ClientIDIssuedAt: stored.CreatedAt.Unix(), ClientName: c.name,
		RedirectURIs: c.redirectURIs, TokenEndpointAuthMethod: string(c.authMethod),
		GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"}}
	if secret != "" {
		never := int64(0)
		resp.ClientSecretExpiresAt = &never
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(resp)
}

// newClient validates a registration and makes the client, with its secret
// when it is confidential.
func (s *Server) newClient(req registration) (*client, string, error) {
	if err := checkRedirectURIs(req.RedirectURIs); err != nil {
		return nil, "", err
	}
	method := req.TokenEndpointAuthMethod
	if method == "" {
		method = string(oidc.AuthMethodBasic) // RFC 7591 section 2's default
	}
	switch method {
	case string(oidc.AuthMethodNone), string(oidc.AuthMethodBasic), string(oidc.AuthMethodPost):
	default:
		return nil, "", fmt.Errorf("token_endpoint_auth_method %q is not supported; use none, client_secret_basic or client_secret_post", method)
	}
	for _, g := range req.GrantTypes {
		if g != "authorization_code" && g != "refresh_token" {
			return nil, "", fmt.Errorf("grant_types: %q is not supported; keygate offers authorization_code and refresh_token", g)
		}
	}
	if len(req.ResponseTypes) > 0 && !slices.Equal(req.ResponseTypes, []string{"code"}) {
		return nil, "", errors.New(`response_types: only ["code"] is supported`)
	}
	name := cleanName(req.ClientName)
	if name == "" {
		name = "unnamed application"
	}
	c := &client{id: "dcr_" + strings.ToLower(rand.Text()), name: name, redirectURIs: req.RedirectURIs,
		authMethod: oidc.AuthMethod(method), loginURL: s.consentURL}
	secret := ""
	if c.authMethod != oidc.AuthMethodNone {
		secret = clientSecretPrefix + strings.ReplaceAll(rand.Text()+rand.Text(), "=", "")
		sum := sha256.Sum256([]byte(secret))
		c.secretHash = sum[:]
	}
	return c, secret, nil
}

// writeOAuthError writes an error response of RFC 6749 section 5.2's shape.
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}
