package authserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/auth"
	"github.com/keygate/keygate/oauth"
	"github.com/keygate/keygate/provider"
	"github.com/keygate/keygate/provider/local"
)

// The consent page: a person sees which application asks for what, ticks
// the scopes to grant, and signs in with a keygate token they hold. It is
// plain HTML that works without JavaScript. It is protected against
// cross-site request forgery by a token bound to the authorization request
// and to the browser (a hidden field that must equal a cookie set with the
// form), against framing by frame-ancestors 'none' and X-Frame-Options, and
// against guessing tokens by a per-address and per-request limit. The keygate
// token is POSTed, never put in a URL, and never logged or stored.

//go:embed consent.html
var consentHTML string

var consentPage = template.Must(template.New("consent").Parse(consentHTML))

const consentStyle = `body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}` +
	`main{max-width:40rem;margin:2rem auto;padding:1.5rem 2rem;background:#fff;border:1px solid #d0d7de;border-radius:8px}` +
	`h1{font-size:1.4rem}dt{font-weight:600;margin-top:.75rem}dd{margin:0}fieldset{border:1px solid #d0d7de;margin:1rem 0}` +
	`label.scope{display:block;margin:.3rem 0}code{font-size:.85em;color:#57606a}` +
	`input[type=password]{display:block;width:100%;box-sizing:border-box;padding:.5rem;font:inherit;margin:.3rem 0}` +
	`.hint{color:#57606a;font-size:.9rem}.error{background:#ffebe9;border:1px solid #ff8182;padding:.5rem .75rem}` +
	`button{font:inherit;padding:.5rem 1.5rem;margin-right:1rem}`

// styleHash lets the one inline style block through the page's
// Content-Security-Policy, which allows nothing else.
var styleHash = func() string {
	sum := sha256.Sum256([]byte(consentStyle))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

type pageData struct {
	Title   string
	Message string
	Style   template.CSS
	Form    *formData
}

type formData struct {
	Error        string
	ClientName   string
	ClientHost   string
	FromDocument bool
	RedirectHost string
	Loopback     bool
	Resource     string
	Action       string
	ID           string
	CSRF         string
	Scopes       []scopeChoice
	Until        string
}

type scopeChoice struct {
	Value   string
	Words   string
	Checked bool
}

// sourceExpr matches a scheme-and-host CSP source expression built from a
// redirect URI, so nothing else can reach the header.
var sourceExpr = regexp.MustCompile(`^[a-z][a-z0-9+.-]*:(//[A-Za-z0-9.:\[\]-]+)?$`)

// securityHeaders are set on every page: no framing, no caching, no
// referrer, nothing but the one style block. form-action names the client's
// redirect origin too, because browsers apply it to the redirect that
// follows the form.
func securityHeaders(w http.ResponseWriter, redirectURI string) {
	formAction := "'self'"
	if u, err := url.Parse(redirectURI); err == nil && redirectURI != "" {
		src := strings.ToLower(u.Scheme) + ":"
		if u.Host != "" {
			src += "//" + u.Host
		}
		if sourceExpr.MatchString(src) {
			formAction += " " + src
		}
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src "+styleHash+"; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Type", "text/html; charset=utf-8")
}

func render(w http.ResponseWriter, status int, redirectURI string, d pageData) {
	d.Style = template.CSS(consentStyle)
	var buf bytes.Buffer
	if err := consentPage.Execute(&buf, d); err != nil {
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	securityHeaders(w, redirectURI)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// writePage renders a page with a message and no form.
func writePage(w http.ResponseWriter, status int, title, message string) {
	render(w, status, "", pageData{Title: title, Message: message})
}

func (s *Server) serveConsent(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.consentForm(w, r)
	case http.MethodPost:
		s.consentAnswer(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		writePage(w, http.StatusMethodNotAllowed, "Not allowed", "This page answers GET and POST only.")
	}
}

const expiredMessage = "This sign-in request is unknown or has expired (they last 10 minutes). Start again from your application."

func cookieName(id string) string { return "kg_consent_" + id }

func (s *Server) consentForm(w http.ResponseWriter, r *http.Request) {
	a, ok := s.pending.get(r.URL.Query().Get("id"))
	if !ok || a.done {
		writePage(w, http.StatusBadRequest, "Sign-in expired", expiredMessage)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName(a.id), Value: a.csrf, Path: ConsentPath, MaxAge: int(s.cfg.RequestTTL.Seconds()),
		HttpOnly: true, Secure: strings.HasPrefix(s.cfg.Issuer, "https://"), SameSite: http.SameSiteStrictMode})
	s.renderForm(r.Context(), w, http.StatusOK, a, "", a.scopes)
}

func (s *Server) renderForm(ctx context.Context, w http.ResponseWriter, status int, a authRequest, problem string, checked []string) {
	c, err := s.clients.get(ctx, a.clientID)
	fromDocument, clientHost := false, ""
	if err == nil && c.fromDocument {
		fromDocument = true
		clientHost, _ = hostOf(c.id)
	}
	redirectHost, _ := hostOf(a.redirectURI)
	until := s.now().Add(s.cfg.MaxGrantLifetime).UTC().Format(time.DateOnly)
	d := &formData{Error: problem, ClientName: a.clientName, ClientHost: clientHost, FromDocument: fromDocument,
		RedirectHost: redirectHost, Loopback: oauth.IsLoopbackHost(redirectHost), Resource: a.resource,
		Action: ConsentPath, ID: a.id, CSRF: a.csrf, Until: until}
	for _, v := range a.scopes {
		sc, _ := auth.ParseScope(v) // a.scopes hold parsed scopes only
		d.Scopes = append(d.Scopes, scopeChoice{Value: v, Words: describeScope(sc), Checked: slices.Contains(checked, v)})
	}
	render(w, status, a.redirectURI, pageData{Title: "Allow " + a.clientName + " to use keygate?", Form: d})
}

// csrfOK checks the form's token against the request's and the browser's
// cookie, in constant time.
func csrfOK(r *http.Request, a authRequest) bool {
	cookie, err := r.Cookie(cookieName(a.id))
	if err != nil {
		return false
	}
	form := r.PostForm.Get("csrf")
	return subtle.ConstantTimeCompare([]byte(form), []byte(a.csrf)) == 1 &&
		subtle.ConstantTimeCompare([]byte(cookie.Value), []byte(a.csrf)) == 1
}

func (s *Server) consentAnswer(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		writePage(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	a, ok := s.pending.get(r.PostForm.Get("id"))
	if !ok || a.done {
		writePage(w, http.StatusBadRequest, "Sign-in expired", expiredMessage)
		return
	}
	if !csrfOK(r, a) {
		s.refuse(ctx, "oauth.consent", "client:"+a.clientID, "consent form without its token")
		writePage(w, http.StatusForbidden, "Form not accepted",
			"This form was not sent from keygate's page in this browser, or the page is too old. Start again from your application.")
		return
	}
	switch r.PostForm.Get("action") {
	case "deny":
		s.pending.remove(a.id)
		s.record(audit.Record{Tool: "oauth.consent", Target: "client:" + a.clientID, Outcome: audit.OutcomeRefused,
			Detail: "the person denied the request", Remote: addressFrom(ctx)})
		s.redirectError(w, r, a, oidc.ErrAccessDenied().WithDescription("the person denied the request"))
	case "approve":
		s.approve(w, r, a)
	default:
		writePage(w, http.StatusBadRequest, "Bad request", "Press Allow or Deny.")
	}
}

// redirectError sends the browser back to the client with an error (RFC
// 6749 section 4.1.2.1). 303 makes the browser follow with a GET, so the
// form, with the token in it, is never sent on.
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, a authRequest, e *oidc.Error) {
	clearCookie(w, a.id)
	red, err := op.TryErrorRedirect(r.Context(), a, e, s.provider.Encoder(), nil)
	if err != nil {
		writePage(w, http.StatusBadRequest, "Request refused", e.Description)
		return
	}
	securityHeaders(w, a.redirectURI)
	http.Redirect(w, r, s.withIssuer(red.URL), http.StatusSeeOther)
}

// withIssuer adds the iss parameter to an authorization response (RFC 9207
// section 2), so a client that talks to several servers can tell which one
// answered.
func (s *Server) withIssuer(callback string) string {
	u, err := url.Parse(callback)
	if err != nil {
		return callback
	}
	q := u.Query()
	q.Set("iss", s.cfg.Issuer)
	u.RawQuery = q.Encode()
	return u.String()
}

func clearCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{Name: cookieName(id), Value: "", Path: ConsentPath, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// chosenScopes are the permissions ticked on the form: at least one, and
// only those the client asked for. Otherwise problem says, for the form,
// what to change.
func chosenScopes(asked, checked []string) (scopes auth.Scopes, problem string) {
	for _, v := range checked {
		if !slices.Contains(asked, v) {
			return nil, fmt.Sprintf("%q was not asked for; tick only the permissions listed.", v)
		}
	}
	if len(checked) == 0 {
		return nil, "Tick at least one permission, or press Deny."
	}
	scopes, err := auth.ParseScopes(checked)
	if err != nil {
		return nil, err.Error()
	}
	return scopes, ""
}

// grantExpiry is when a grant approved with p ends: after the longest
// lifetime a grant may have, and never after p's own key.
func (s *Server) grantExpiry(p auth.Principal) time.Time {
	expires := s.now().Add(s.cfg.MaxGrantLifetime)
	if !p.ExpiresAt.IsZero() && p.ExpiresAt.Before(expires) {
		expires = p.ExpiresAt
	}
	return expires
}

func (s *Server) approve(w http.ResponseWriter, r *http.Request, a authRequest) {
	ctx := r.Context()
	addr := addressFrom(ctx)
	checked := r.PostForm["scope"]
	again := func(status int, problem string) { s.renderForm(ctx, w, status, a, problem, checked) }
	if s.consentLimit.spent(addr) {
		w.Header().Set("Retry-After", "600")
		writePage(w, http.StatusTooManyRequests, "Too many attempts",
			"Too many wrong tokens were entered from this address. Wait 10 minutes, then start again from your application.")
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	if token == "" {
		again(http.StatusBadRequest, "Enter your keygate token to sign in.")
		return
	}
	p, err := s.cfg.Store.Verify(ctx, token)
	if errors.Is(err, auth.ErrInvalidToken) {
		s.consentLimit.allow(addr)
		s.refuse(ctx, "oauth.consent", "client:"+a.clientID, "wrong keygate token on the consent page")
		updated, uerr := s.pending.update(a.id, func(a *authRequest) error { a.failures++; return nil })
		if uerr == nil && updated.failures >= s.cfg.Limits.FailuresPerRequest {
			s.pending.remove(a.id)
			s.redirectError(w, r, a, oidc.ErrAccessDenied().WithDescription("too many wrong tokens were entered"))
			return
		}
		again(http.StatusBadRequest, "That is not a keygate token that works: check it (it starts with kg_pat_) and try again.")
		return
	}
	if err != nil {
		s.cfg.Logger.ErrorContext(ctx, "oauth: verifying a token on the consent page", "err", err)
		writePage(w, http.StatusInternalServerError, "Something went wrong", "keygate could not check the token. Try again in a moment.")
		return
	}
	next, err := s.cfg.Store.Successor(ctx, p.KeyID)
	if err != nil {
		s.cfg.Logger.ErrorContext(ctx, "oauth: reading the successor of a key", "key", p.KeyID, "err", err)
		writePage(w, http.StatusInternalServerError, "Something went wrong", "keygate could not check the token. Try again in a moment.")
		return
	}
	if next != "" {
		// A rotated key may not make credentials (package policy): a
		// leaked old key must not outlive its rotation through a grant.
		again(http.StatusForbidden, fmt.Sprintf("Key %s has been rotated into key %s and only works until its grace period ends; sign in with the new key.", p.KeyID, next))
		return
	}
	scopes, problem := chosenScopes(a.scopes, checked)
	if problem != "" {
		again(http.StatusBadRequest, problem)
		return
	}
	expires := s.grantExpiry(p)
	// The same rule as for keys that make keys: no wider, no longer.
	if err := auth.CheckGrant(p, scopes, expires); err != nil {
		var ge *auth.GrantError
		if errors.As(err, &ge) {
			again(http.StatusForbidden, "Your token cannot grant this: "+ge.Problem+". Untick what it does not hold, or sign in with a key that holds it.")
			return
		}
		again(http.StatusForbidden, err.Error())
		return
	}
	redirectHost, _ := hostOf(a.redirectURI)
	g, err := s.cfg.Store.CreateGrant(ctx, local.NewGrant{ClientID: a.clientID, ClientName: a.clientName, RedirectHost: redirectHost,
		Resource: a.resource, Scopes: scopes, ApprovedBy: p.KeyID, ExpiresAt: expires})
	var fe *provider.FieldError
	if errors.As(err, &fe) {
		again(http.StatusForbidden, fe.Error())
		return
	}
	if err != nil {
		s.cfg.Logger.ErrorContext(ctx, "oauth: storing a grant", "err", err)
		writePage(w, http.StatusInternalServerError, "Something went wrong", "keygate could not store the grant. Try again in a moment.")
		return
	}
	updated, err := s.pending.update(a.id, func(a *authRequest) error {
		a.done, a.grant, a.scopes = true, g, g.Scopes
		return nil
	})
	if err != nil {
		s.revokeGrant(ctx, g.ID, "the authorization request expired during consent", "consent came too late")
		writePage(w, http.StatusBadRequest, "Sign-in expired", expiredMessage)
		return
	}
	s.record(func() audit.Record {
		rec := auditRecord(g, "oauth.consent", "grant approved")
		rec.Remote = addr
		return rec
	}())
	callback, err := op.BuildAuthResponseCallbackURL(ctx, updated, s.provider)
	if err != nil {
		s.revokeGrant(ctx, g.ID, "the authorization code could not be issued", "code not issued")
		writePage(w, http.StatusInternalServerError, "Something went wrong", "keygate could not finish. Start again from your application.")
		return
	}
	clearCookie(w, a.id)
	securityHeaders(w, a.redirectURI)
	http.Redirect(w, r, s.withIssuer(callback), http.StatusSeeOther)
}
