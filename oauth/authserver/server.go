package authserver

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/oauth"
	"github.com/keygate/keygate/provider/local"
)

// maxRequestBody bounds every request body the server reads.
const maxRequestBody = 64 << 10

// Server is the embedded authorization server.
type Server struct {
	cfg      Config
	now      func() time.Time
	keys     *keyring
	pending  *pending
	clients  *clients
	provider *op.Provider
	handler  http.Handler
	verifier *Verifier

	authorizeLimit *limiter
	registerLimit  *limiter
	consentLimit   *limiter
}

// New builds the server, creating its first signing key when the store has
// none.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, now: cfg.Now}
	lim := cfg.Limits
	s.keys = newKeyring(cfg.Store, cfg.Now, cfg.KeyRotation, cfg.AccessTokenTTL+5*time.Minute)
	s.pending = newPending(cfg.Now, lim.MaxPending, cfg.RequestTTL, cfg.CodeTTL)
	s.authorizeLimit = newLimiter(cfg.Now, lim.Authorize, time.Minute, lim.Addresses)
	s.registerLimit = newLimiter(cfg.Now, lim.Register, time.Hour, lim.Addresses)
	s.consentLimit = newLimiter(cfg.Now, lim.ConsentFailures, 10*time.Minute, lim.Addresses)
	s.clients = &clients{store: cfg.Store, loginURL: s.consentURL}
	if !cfg.CIMD.Disabled {
		s.clients.docs = newDocuments(cfg.CIMD, cfg.Now, newLimiter(cfg.Now, lim.MetadataFetches, time.Minute, lim.Addresses), s.consentURL)
	}
	if _, err := s.keys.active(ctx); err != nil {
		return nil, fmt.Errorf("authserver: %w", err)
	}

	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, fmt.Errorf("authserver: %w", err)
	}
	opts := []op.Option{}
	if strings.HasPrefix(cfg.Issuer, "http://") {
		opts = append(opts, op.WithAllowInsecure()) // withDefaults admits http only on loopback
	}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:             cryptoKey, // encrypts authorization codes; codes live minutes, so a new key each start
		CodeMethodS256:        true,
		AuthMethodPost:        true,
		GrantTypeRefreshToken: true,
	}, storage{s}, op.StaticIssuer(cfg.Issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("authserver: %w", err)
	}
	s.provider = provider
	s.verifier = newVerifier(cfg.Issuer, cfg.Resource, s.keys, cfg.Store, cfg.Now)

	endpoints := op.Endpoints{
		Authorization: op.NewEndpoint(strings.TrimPrefix(AuthorizePath, "/")),
		Token:         op.NewEndpoint(strings.TrimPrefix(TokenPath, "/")),
		Revocation:    op.NewEndpoint(strings.TrimPrefix(RevokePath, "/")),
		JwksURI:       op.NewEndpoint(strings.TrimPrefix(JWKSPath, "/")),
	}
	protocol := op.RegisterLegacyServer(&opServer{LegacyServer: op.NewLegacyServer(provider, endpoints), s: s}, http.NotFound)

	mux := http.NewServeMux()
	mux.HandleFunc(MetadataPath, s.serveMetadata)
	mux.Handle(AuthorizePath, s.limitAuthorize(protocol))
	mux.Handle(TokenPath, protocol)
	mux.Handle(RevokePath, protocol)
	mux.Handle(JWKSPath, protocol)
	mux.HandleFunc(RegisterPath, s.serveRegister)
	mux.HandleFunc(ConsentPath, s.serveConsent)
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		mux.ServeHTTP(w, r.WithContext(withAddress(r.Context(), cfg.ClientAddress(r))))
	})
	return s, nil
}

// Handler serves the authorization server's endpoints (the paths above);
// mount it at the issuer's origin.
func (s *Server) Handler() http.Handler { return s.handler }

// Patterns are the paths to route to Handler on a mux that serves more.
func Patterns() []string {
	return []string{MetadataPath, AuthorizePath, TokenPath, RevokePath, JWKSPath, RegisterPath, ConsentPath}
}

// Verifier checks the access tokens this server issues.
func (s *Server) Verifier() *Verifier { return s.verifier }

// Issuer is the server's issuer identifier.
func (s *Server) Issuer() string { return s.cfg.Issuer }

func (s *Server) consentURL(id string) string {
	return s.cfg.Issuer + ConsentPath + "?" + url.Values{"id": {id}}.Encode()
}

func (s *Server) limitAuthorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorizeLimit.allow(addressFrom(r.Context())) {
			s.refuse(r.Context(), "oauth.authorize", "", "authorization requests over the per-address limit")
			w.Header().Set("Retry-After", "60")
			writePage(w, http.StatusTooManyRequests, "Too many requests",
				"This address has started too many sign-ins in the last minute. Wait a minute and try again from your application.")
			return
		}
		next.ServeHTTP(&issuerWriter{ResponseWriter: w, s: s}, r)
	})
}

// issuerWriter adds iss to the error responses the library redirects to a
// client (RFC 9207 requires it in every authorization response, errors
// too); redirects to keygate's own consent page are left alone.
type issuerWriter struct {
	http.ResponseWriter
	s *Server
}

func (w *issuerWriter) WriteHeader(code int) {
	if loc := w.Header().Get("Location"); code >= 300 && code < 400 && loc != "" && !strings.HasPrefix(loc, w.s.cfg.Issuer+"/") {
		w.Header().Set("Location", w.s.withIssuer(loc))
	}
	w.ResponseWriter.WriteHeader(code)
}

// metadata is the authorization server metadata (RFC 8414 section 2), with
// the Client ID Metadata Document flag of its draft.
type metadata struct {
	Issuer                                 string   `json:"issuer"`
	AuthorizationEndpoint                  string   `json:"authorization_endpoint"`
	TokenEndpoint                          string   `json:"token_endpoint"`
	RegistrationEndpoint                   string   `json:"registration_endpoint"`
	RevocationEndpoint                     string   `json:"revocation_endpoint"`
	JWKSURI                                string   `json:"jwks_uri"`
	ScopesSupported                        []string `json:"scopes_supported"`
	ResponseTypesSupported                 []string `json:"response_types_supported"`
	ResponseModesSupported                 []string `json:"response_modes_supported"`
	GrantTypesSupported                    []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported      []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethodsSupported []string `json:"revocation_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported          []string `json:"code_challenge_methods_supported"`
	AuthorizationResponseISSSupported      bool     `json:"authorization_response_iss_parameter_supported"`
	ClientIDMetadataDocumentSupported      bool     `json:"client_id_metadata_document_supported"`
	ServiceDocumentation                   string   `json:"service_documentation,omitempty"`
}

// Metadata returns the document served at MetadataPath.
func (s *Server) Metadata() metadata {
	iss := s.cfg.Issuer
	authMethods := []string{"none", "client_secret_basic", "client_secret_post"}
	scopes := make([]string, len(auth.AllActions))
	for i, a := range auth.AllActions {
		scopes[i] = string(a)
	}
	return metadata{
		Issuer: iss, AuthorizationEndpoint: iss + AuthorizePath, TokenEndpoint: iss + TokenPath,
		RegistrationEndpoint: iss + RegisterPath, RevocationEndpoint: iss + RevokePath, JWKSURI: iss + JWKSPath,
		ScopesSupported:                        scopes,
		ResponseTypesSupported:                 []string{"code"},
		ResponseModesSupported:                 []string{"query"},
		GrantTypesSupported:                    []string{"authorization_code", "refresh_token"},
		TokenEndpointAuthMethodsSupported:      authMethods,
		RevocationEndpointAuthMethodsSupported: authMethods,
		CodeChallengeMethodsSupported:          []string{"S256"},
		AuthorizationResponseISSSupported:      true,
		ClientIDMetadataDocumentSupported:      s.clients.docs != nil,
	}
}

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if preflight(w, r, http.MethodGet) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	_ = json.NewEncoder(w).Encode(s.Metadata())
}

// preflight lets browser-based clients (such as an MCP inspector in a web
// page) read the metadata and register: it sets the CORS headers, answers
// an OPTIONS preflight and refuses other methods than allowed. No cookie or
// credential is involved in either endpoint, so any origin may call them.
// It reports whether the request has been answered.
func preflight(w http.ResponseWriter, r *http.Request, allowed string) bool {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", allowed+", OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, MCP-Protocol-Version")
	switch {
	case r.Method == http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
		return true
	case r.Method == allowed, r.Method == http.MethodHead && allowed == http.MethodGet:
		return false
	}
	h.Set("Allow", allowed+", OPTIONS")
	writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "use "+allowed)
	return true
}

// opServer is the library's LegacyServer with keygate's rules where the
// library is more permissive than keygate wants or leaves the decision to
// its user.
type opServer struct {
	*op.LegacyServer
	s *Server
}

// VerifyAuthRequest finds the client. A request without a scope gets
// keygate's scopes: the person picks on the consent page (RFC 6749 section
// 3.3 lets the server choose a default). Request objects are not supported
// (Authorize refuses them).
func (o *opServer) VerifyAuthRequest(ctx context.Context, r *op.Request[oidc.AuthRequest]) (*op.ClientRequest[oidc.AuthRequest], error) {
	if len(r.Data.Scopes) == 0 {
		for _, a := range auth.AllActions {
			r.Data.Scopes = append(r.Data.Scopes, string(a))
		}
	}
	if r.Data.ClientID == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("client_id is missing")
	}
	// The library compares redirect_uri with the registered ones (exactly,
	// but for the port of a loopback URI, RFC 8252 section 7.3); keygate
	// first refuses one that no client could have registered.
	if err := checkRedirectURI(r.Data.RedirectURI); err != nil {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("redirect_uri: %s", err.Error())
	}
	// The library would answer an unknown client with a 500; it is the
	// caller's mistake. The error is shown, never redirected: the
	// redirect_uri of an unknown client cannot be trusted.
	c, err := o.s.clients.get(ctx, r.Data.ClientID)
	if err != nil {
		o.s.cfg.Logger.WarnContext(ctx, "oauth: client lookup failed", "client_id", r.Data.ClientID, "err", err)
		if !errors.Is(err, errUnknownClient) {
			return nil, oidc.ErrServerError().WithParent(err)
		}
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("%s", err.Error())
	}
	return &op.ClientRequest[oidc.AuthRequest]{Request: r, Client: c}, nil
}

// Authorize runs after the library has checked the client and that the
// redirect_uri is one it registered, so an error returned here is sent to
// the client's redirect_uri. It adds keygate's rules and hands the request
// to the consent page.
func (o *opServer) Authorize(ctx context.Context, r *op.ClientRequest[oidc.AuthRequest]) (*op.Redirect, error) {
	ar := r.Data
	c, _ := r.Client.(*client)
	switch {
	case ar.RequestParam != "":
		return nil, oidc.ErrRequestNotSupported()
	case ar.ResponseType != oidc.ResponseTypeCode:
		return nil, oidc.ErrInvalidRequest().WithDescription("response_type must be code")
	case ar.ResponseMode != "" && ar.ResponseMode != oidc.ResponseModeQuery:
		return nil, oidc.ErrInvalidRequest().WithDescription("response_mode must be query")
	case ar.CodeChallenge == "":
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge is required: keygate requires PKCE with S256 (RFC 7636)")
	case ar.CodeChallengeMethod != oidc.CodeChallengeMethodS256:
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256; plain is not accepted (OAuth 2.1 section 4.1.1)")
	case !validS256Challenge(ar.CodeChallenge):
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge must be 43 base64url characters (the SHA-256 of the verifier)")
	case slices.Contains(ar.Prompt, oidc.PromptNone):
		return nil, oidc.ErrLoginRequired().WithDescription("keygate always asks the person to approve; prompt=none cannot be honoured")
	case c == nil:
		return nil, oidc.ErrServerError().WithDescription("unexpected client")
	}
	resource, err := o.s.checkResource(r.Form["resource"], "")
	if err != nil {
		return nil, err
	}
	var scopes []string
	for _, sc := range ar.Scopes {
		if parsed, err := auth.ParseScope(sc); err == nil && !slices.Contains(scopes, parsed.String()) {
			scopes = append(scopes, parsed.String())
		}
	}
	if len(scopes) == 0 {
		return nil, oidc.ErrInvalidScope().WithDescription("ask for at least one keygate scope: %s", strings.Join(o.s.Metadata().ScopesSupported, ", "))
	}
	a, err := o.s.pending.add(authRequest{
		clientID: c.id, clientName: c.name, redirectURI: ar.RedirectURI, state: ar.State,
		responseType: ar.ResponseType, responseMode: ar.ResponseMode,
		challenge: oidc.CodeChallenge{Challenge: ar.CodeChallenge, Method: ar.CodeChallengeMethod},
		resource:  resource, scopes: scopes,
	})
	if errors.Is(err, errPendingFull) {
		return nil, &oidc.Error{ErrorType: "temporarily_unavailable", Description: err.Error()}
	}
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	return op.NewRedirect(o.s.consentURL(a.id)), nil
}

func validS256Challenge(c string) bool {
	return len(c) == 43 && !strings.ContainsFunc(c, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	})
}

// checkResource applies RFC 8707 and returns the resource the token will
// be for. Every resource a client names must be the same one, and one this
// server issues tokens for: keygate's MCP endpoint, or one of
// Config.Resources. A request naming none gets a token for bound, the
// resource already chosen (by the authorization request, for the token
// endpoint), or for keygate's MCP endpoint (MCP clients are required to
// name it).
func (s *Server) checkResource(resources []string, bound string) (string, error) {
	chosen := bound
	for _, r := range resources {
		c, err := oauth.CanonicalURL(r)
		switch {
		case err != nil || !slices.Contains(s.resources(), c):
			return "", oidc.ErrInvalidTarget().WithDescription("this server issues tokens only for %s", strings.Join(s.resources(), ", "))
		case chosen != "" && c != chosen:
			return "", oidc.ErrInvalidTarget().WithDescription("a token is for one resource: %s", chosen)
		}
		chosen = c
	}
	if chosen == "" {
		chosen = s.cfg.Resource
	}
	return chosen, nil
}

// resources are the resources this server issues tokens for.
func (s *Server) resources() []string { return append([]string{s.cfg.Resource}, s.cfg.Resources...) }

// CodeExchange is the library's, with PKCE required of every client
// (the library skips it for a confidential client that sends no
// verifier), the resource checked, replay detection and no ID token.
func (o *opServer) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	s := o.s
	got, err := op.AuthRequestByCode(ctx, storage{s}, r.Data.Code)
	if err != nil {
		s.refuse(ctx, "oauth.token", r.Client.GetID(), "unknown, expired or replayed authorization code")
		return nil, err
	}
	a := got.(authRequest)
	if r.Client.GetID() != a.clientID {
		return nil, oidc.ErrInvalidGrant().WithDescription("the code was issued to another client")
	}
	if r.Data.RedirectURI != a.redirectURI {
		return nil, oidc.ErrInvalidGrant().WithDescription("redirect_uri differs from the authorization request's")
	}
	if err := op.AuthorizeCodeChallenge(r.Data.CodeVerifier, a.GetCodeChallenge()); err != nil {
		s.refuse(ctx, "oauth.token", a.clientID, "PKCE verification failed")
		return nil, err
	}
	if _, err := s.checkResource(r.Form["resource"], a.resource); err != nil {
		return nil, err
	}
	if err := s.pending.exchange(a.id); err != nil {
		s.revokeGrant(ctx, a.grant.ID, local.GrantRevokedCodeReplay, "authorization code replayed")
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid code")
	}
	g, err := s.cfg.Store.LiveGrant(ctx, a.grant.ID)
	if err != nil {
		return nil, grantError(err)
	}
	return s.tokenResponse(ctx, &tokenRequest{grant: g, clientID: a.clientID, scopes: g.Scopes}, r.Client, "")
}

// RefreshToken is the library's, with the resource checked and no ID token.
func (o *opServer) RefreshToken(ctx context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	s := o.s
	req, err := op.RefreshTokenRequestByRefreshToken(ctx, storage{s}, r.Data.RefreshToken)
	if err != nil {
		s.refuse(ctx, "oauth.token", r.Client.GetID(), "refresh refused")
		return nil, err
	}
	if r.Client.GetID() != req.GetClientID() {
		return nil, oidc.ErrInvalidGrant().WithDescription("the refresh token was issued to another client")
	}
	if _, err := s.checkResource(r.Form["resource"], req.(*tokenRequest).grant.Resource); err != nil {
		return nil, err
	}
	if err := op.ValidateRefreshTokenScopes(r.Data.Scopes, req); err != nil {
		return nil, err
	}
	return s.tokenResponse(ctx, req.(*tokenRequest), r.Client, r.Data.RefreshToken)
}

// tokenResponse mints an access token (a JWT signed by the library with the
// active key) and the refresh token that goes with it.
func (s *Server) tokenResponse(ctx context.Context, req *tokenRequest, c op.Client, current string) (*op.Response, error) {
	access, refresh, validity, err := op.CreateAccessToken(ctx, req, op.AccessTokenTypeJWT, s.provider, c, current)
	if err != nil {
		return nil, err
	}
	resp := op.NewResponse(&oidc.AccessTokenResponse{AccessToken: access, RefreshToken: refresh, TokenType: oidc.BearerToken,
		ExpiresIn: uint64(max(validity, 0).Seconds()), Scope: req.scopes})
	resp.Header.Set("Cache-Control", "no-store")
	resp.Header.Set("Pragma", "no-cache")
	return resp, nil
}

// Revocation (RFC 7009) ends the whole grant of the token presented, access
// or refresh, when the token belongs to the authenticated client; it
// answers 200 for a token it does not know, as section 2.2 asks.
func (o *opServer) Revocation(ctx context.Context, r *op.ClientRequest[oidc.RevocationRequest]) (*op.Response, error) {
	s := o.s
	grantID, clientID := "", ""
	switch tok := r.Data.Token; {
	case strings.HasPrefix(tok, refreshTokenPrefix):
		if rt, err := s.cfg.Store.LookupRefreshToken(ctx, refreshTokenHash(tok)); err == nil {
			if g, err := s.cfg.Store.LiveGrant(ctx, rt.GrantID); err == nil {
				grantID, clientID = g.ID, g.ClientID
			}
		}
	case oauth.LooksLikeJWT(tok):
		if claims, err := s.verifier.claims(ctx, tok); err == nil {
			grantID, clientID = claims.Subject, claims.ClientID
		}
	}
	if grantID != "" && clientID == r.Client.GetID() {
		g, already, err := s.cfg.Store.RevokeGrant(ctx, grantID, "revoked by the client")
		if err != nil {
			return nil, op.RevocationError(oidc.ErrServerError().WithParent(err))
		}
		if !already {
			s.record(auditRecord(g, "oauth.revoke", "grant revoked by its client"))
		}
	}
	return op.NewResponse(struct{}{}), nil
}

// Discovery is OpenID Connect's; keygate is an OAuth authorization server
// and publishes RFC 8414 metadata only.
func (o *opServer) Discovery(context.Context, *op.Request[struct{}]) (*op.Response, error) {
	return nil, op.NewStatusError(oidc.ErrInvalidRequest().WithDescription("see %s", MetadataPath), http.StatusNotFound)
}
