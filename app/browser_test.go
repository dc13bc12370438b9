//go:build slow

package app_test

// The consent page in a real browser (issue 15): headless Chromium, driven
// over the DevTools protocol, with JavaScript off, reads the page, grants a
// subset of the scopes with a keygate token and is sent back to the
// client's loopback redirect URI with a code. Starting a browser takes
// seconds, so this is the slow tier (go test -tags slow).

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/css"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/keygate/keygate/app"
	"github.com/keygate/keygate/oauth/authserver"
)

// chromiumPath finds headless Chromium (Debian's package installs
// /usr/bin/chromium). The test is skipped without it, unless
// KEYGATE_REQUIRE_CHROMIUM=1 (as in CI) makes that a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("KEYGATE_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("KEYGATE_REQUIRE_CHROMIUM=1 but no chromium on PATH: install Debian's chromium package")
	}
	t.Skip("no chromium on PATH (apt-get install chromium); set KEYGATE_REQUIRE_CHROMIUM=1 to make this a failure")
	return ""
}

// headless starts Chromium for the test with a profile of its own and
// returns a tab's context. Every request goes straight to loopback.
func headless(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 1100),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to run as root with its sandbox on.
		opts = append(opts, chromedp.NoSandbox)
	}
	// A bound on the whole browser session, so a page that never loads
	// fails the test instead of hanging it; no assertion depends on it.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(ctx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelTab)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// header is a response header as the browser reports it.
func header(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return fmt.Sprint(v)
		}
	}
	return ""
}

func cssProperty(style []*css.ComputedStyleProperty, name string) string {
	for _, p := range style {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// artifacts is where the test leaves files for a person to look at:
// go test -artifacts keeps them under -outputdir.
func artifacts(t *testing.T) string {
	dir := t.ArtifactDir()
	t.Logf("artifacts in %s", dir)
	return dir
}

// client is the client's own web server on loopback: its redirect URI,
// which hands each query it receives to the test, and a page of its own
// that frames another page.
type oauthClient struct {
	redirect string
	codes    <-chan url.Values
	framing  func(src string) string // the URL of a page framing src and a page of the client
}

func startClient(t *testing.T) oauthClient {
	t.Helper()
	codes := make(chan url.Values, 4)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		codes <- r.URL.Query()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		// noscript shows only where scripts are off.
		fmt.Fprint(w, "<!doctype html><title>Signed in</title><p>You may close this window.<noscript><p>Scripts are off.</p></noscript>")
	})
	mux.HandleFunc("GET /own", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>Own</title><form id="own"></form>`)
	})
	mux.HandleFunc("GET /frame", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Framing</title><iframe name="victim" src="%s"></iframe><iframe name="own" src="/own"></iframe>`,
			html.EscapeString(r.URL.Query().Get("src")))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return oauthClient{redirect: srv.URL + "/callback", codes: codes,
		framing: func(src string) string { return srv.URL + "/frame?" + url.Values{"src": {src}}.Encode() }}
}

// TestConsentPageInBrowser: the consent page in headless Chromium with
// JavaScript disabled. It names the client and the host it returns to and
// lists the scopes in words, styled (its style's hash is in its
// Content-Security-Policy); unticking one and signing in with a keygate
// token sends the browser to the client's loopback redirect URI with a
// code (form-action lets the redirect through), which is exchanged for a
// token holding exactly the ticked scopes. A page of the client that frames
// the authorization URL gets an error page where the consent page would be.
func TestConsentPageInBrowser(t *testing.T) {
	t.Parallel()
	ctx := headless(t)
	in := newInstance(t)
	s := serveOn(t, reserve(t), in, app.Options{})
	alice := mintCLI(t, in, "alice", "content:read,content:write,credentials:read")
	s.secrets = append(s.secrets, alice)
	c := startClient(t)
	redirect := c.redirect
	resource := s.base + "/mcp"

	const clientName = "Browser Test Client"
	resp, err := http.Post(s.base+authserver.RegisterPath, "application/json",
		strings.NewReader(fmt.Sprintf(`{"client_name":%q,"redirect_uris":[%q],"token_endpoint_auth_method":"none"}`, clientName, redirect)))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reg); err != nil || reg.ClientID == "" {
		t.Fatalf("register: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	state := rand.Text()
	asked := []string{"content:read", "content:write", "credentials:read"}
	q := url.Values{"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {redirect}, "state": {state},
		"scope": {strings.Join(asked, " ")}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}, "resource": {resource}}
	authURL := s.base + authserver.AuthorizePath + "?" + q.Encode()

	// JavaScript off: the page must work without it.
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}
	consent, err := chromedp.Run(ctx, chromedp.NavigateResponse(authURL))
	if err != nil {
		t.Fatalf("opening the authorization URL: %v", err)
	}
	if u, _ := url.Parse(consent.URL); u == nil || u.Path != authserver.ConsentPath || consent.Status != http.StatusOK {
		t.Fatalf("authorize led to %d %s, want the consent page", consent.Status, consent.URL)
	}
	// Framing is refused by the headers the browser received.
	if csp := header(consent.Headers, "Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") ||
		header(consent.Headers, "X-Frame-Options") != "DENY" {
		t.Errorf("the browser got the consent page without frame protection: %v", consent.Headers)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Allow " + clientName + " to use keygate?",
		"127.0.0.1", // the redirect URI's host
		resource,
		"Read content: list, search and open posts and other content",
		"Create and change content",
		"See keygate keys (masked): yours and the keys yours created",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the consent page does not say %q:\n%s", want, text)
		}
	}
	// The one inline style block passes the page's Content-Security-Policy
	// (its hash is in style-src): the page is styled, not bare.
	style, err := chromedp.Run(ctx, chromedp.ComputedStyle(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	if radius := cssProperty(style, "border-top-left-radius"); radius != "8px" {
		t.Errorf("the consent page's style was not applied (border radius %q): is its hash in the Content-Security-Policy?", radius)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(artifacts(t), "consent.png")
	if err := os.WriteFile(png, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the consent page: %s", png)

	// Grant a subset: untick content:write, sign in with alice's token.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`input[name=scope][value="content:write"]`)),
		chromedp.SendKeys(chromedp.ID("token"), alice),
	)
	if err != nil {
		t.Fatalf("filling the consent form: %v", err)
	}
	// The browser follows the answer's redirect to the client; the
	// callback has the query before the browser has its page.
	landed, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`button[value=approve]`)))
	if err != nil {
		t.Fatalf("submitting the consent form: %v", err)
	}
	var back url.Values
	select {
	case back = <-c.codes:
	default:
		text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("the browser was not sent to the redirect URI but to %d %s:\n%s", landed.Status, landed.URL, text)
	}
	if back.Get("code") == "" || back.Get("state") != state || back.Get("iss") != s.base {
		t.Fatalf("redirect with %v: want a code, state and iss=%s", back, s.base)
	}

	resp, err = http.PostForm(s.base+authserver.TokenPath, url.Values{"grant_type": {"authorization_code"}, "code": {back.Get("code")},
		"redirect_uri": {redirect}, "client_id": {reg.ClientID}, "code_verifier": {verifier}, "resource": {resource}})
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		tokens
		Scope string `json:"scope"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.Access == "" {
		t.Fatalf("token: %d %+v %v", resp.StatusCode, tr, err)
	}
	resp.Body.Close()
	s.secrets = append(s.secrets, tr.Access, tr.Refresh)
	granted := []string{"content:read", "credentials:read"}
	if tr.Scope != "" && tr.Scope != strings.Join(granted, " ") {
		t.Errorf("token response scope %q, want %q", tr.Scope, strings.Join(granted, " "))
	}
	who := s.ok(t, tr.Access, s.session(t, tr.Access), "auth_whoami", nil)
	var scopes []string
	for _, sc := range who["scopes"].([]any) {
		scopes = append(scopes, fmt.Sprint(sc))
	}
	slices.Sort(scopes)
	if !slices.Equal(scopes, granted) {
		t.Errorf("the grant holds %v, want exactly the ticked %v", scopes, granted)
	}

	if text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"))); err != nil || !strings.Contains(text, "Scripts are off.") {
		t.Errorf("the flow ran with scripts on (%v): %q", err, text)
	}

	// The client's page frames the authorization URL: the browser refuses
	// to show the consent page in it, and shows the client's own page.
	if err := chromedp.Do(ctx, chromedp.Navigate(c.framing(authURL))); err != nil {
		t.Fatal(err)
	}
	tree, err := chromedp.Call(ctx, page.GetFrameTree, cdp.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	frames := map[string]*cdp.Frame{}
	for _, f := range tree.FrameTree.ChildFrames {
		frames[f.Frame.Name] = f.Frame
	}
	if f := frames["own"]; f == nil || !strings.HasSuffix(f.URL, "/own") {
		t.Fatalf("the client's page did not frame its own page: %+v", frames["own"])
	}
	victim := frames["victim"]
	if victim == nil {
		t.Fatal("no frame for the authorization URL")
	}
	if u, _ := url.Parse(victim.URL); u == nil || u.Path == authserver.ConsentPath || !strings.Contains(victim.UnreachableURL, authserver.ConsentPath) {
		t.Errorf("the consent page was shown in a frame: url %q, unreachable %q", victim.URL, victim.UnreachableURL)
	}
}
