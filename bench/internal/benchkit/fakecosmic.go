package benchkit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"time"
)

// FakeCosmic is a running provider/cosmic/cosmictest/cmd/fake-cosmic, known
// only through its wire API and the COSMIC_* lines it prints.
type FakeCosmic struct {
	cmd *exec.Cmd
	// Env holds the COSMIC_* variables the fake printed.
	Env  map[string]string
	HTTP *http.Client
}

// StartFakeCosmic starts the fake on a free loopback port and reads its
// COSMIC_* lines from stdout.
func StartFakeCosmic(bin string) (*FakeCosmic, error) {
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0")
	cmd.Env = CleanEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr tailBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	f := &FakeCosmic{cmd: cmd, Env: map[string]string{},
		HTTP: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true}}}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
			if ok && strings.HasPrefix(k, "COSMIC_") {
				f.Env[k] = v
			}
			// COSMIC_DAPI_URL is the last variable the fake prints.
			if !signalled && k == "COSMIC_DAPI_URL" {
				signalled = true
				ready <- nil
			}
		}
		if !signalled {
			ready <- fmt.Errorf("fake-cosmic printed no COSMIC_DAPI_URL line\n%s", stderr.String())
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case err := <-ready:
		if err != nil {
			f.Stop()
			return nil, err
		}
	case <-time.After(30 * time.Second):
		f.Stop()
		return nil, fmt.Errorf("fake-cosmic did not start within 30 s\n%s", stderr.String())
	}
	if f.Env["COSMIC_API_URL"] == "" || f.Env["COSMIC_BUCKET_SLUG"] == "" {
		f.Stop()
		return nil, fmt.Errorf("fake-cosmic printed no COSMIC_API_URL or COSMIC_BUCKET_SLUG: %v", f.Env)
	}
	return f, nil
}

// Stop ends the fake.
func (f *FakeCosmic) Stop() {
	if f.cmd.Process == nil {
		return
	}
	_ = f.cmd.Process.Kill()
	_ = f.cmd.Wait()
}

// KeygateEnv is the environment that points keygate at the fake: the
// data-plane variables only (bucket, read and write keys, API URL).
func (f *FakeCosmic) KeygateEnv() []string {
	var out []string
	for _, k := range []string{"COSMIC_BUCKET_SLUG", "COSMIC_READ_KEY", "COSMIC_WRITE_KEY", "COSMIC_API_URL"} {
		if v, ok := f.Env[k]; ok {
			out = append(out, k+"="+v)
		}
	}
	return out
}

func (f *FakeCosmic) bucketURL(rest string) string {
	return f.Env["COSMIC_API_URL"] + "/buckets/" + url.PathEscape(f.Env["COSMIC_BUCKET_SLUG"]) + rest
}

// AddPosts creates n realistic posts (RealisticPost) through POST /objects.
func (f *FakeCosmic) AddPosts(n int) error {
	for i := range n {
		p := RealisticPost(i)
		var meta map[string]any
		if err := json.Unmarshal(p.Fields, &meta); err != nil {
			return err
		}
		body, _ := json.Marshal(map[string]any{"title": p.Title, "slug": p.Slug, "type": p.Type, "status": p.Status, "metadata": meta})
		req, _ := http.NewRequest(http.MethodPost, f.bucketURL("/objects"), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+f.Env["COSMIC_WRITE_KEY"])
		resp, err := f.HTTP.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("fake-cosmic POST /objects: %d %.300s", resp.StatusCode, b)
		}
	}
	return nil
}

// Get sends GET {bucket}{rest}?read_key=...&query and returns the body.
func (f *FakeCosmic) Get(rest string, query url.Values) ([]byte, error) {
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	if k := f.Env["COSMIC_READ_KEY"]; k != "" {
		q.Set("read_key", k)
	}
	resp, err := f.HTTP.Get(f.bucketURL(rest) + "?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("fake-cosmic GET %s: %d %.300s", rest, resp.StatusCode, b)
	}
	return b, nil
}
