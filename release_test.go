package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/testtier"
)

// TestReleaseTargetsBuild builds keygate for each operating system
// .goreleaser.yaml releases (windows has its own file locking, darwin its
// own paths), as the release does, so a release never finds a platform
// broken. One architecture per system: keygate has no code that differs by
// architecture, and each cold cross-build compiles every dependency again
// (minutes each on two cores), so the six targets would cost the slow tier
// twice as long for nothing keygate could break.
func TestReleaseTargetsBuild(t *testing.T) {
	testtier.SkipUnlessSlow(t)
	cfg, err := os.ReadFile(".goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	list := func(key string) []string {
		m := regexp.MustCompile(`(?m)^\s*` + key + `: \[([^\]]*)\]`).FindSubmatch(cfg)
		if m == nil {
			t.Fatalf(".goreleaser.yaml has no %s list", key)
		}
		return strings.Split(strings.ReplaceAll(string(m[1]), " ", ""), ",")
	}
	archs := list("goarch")
	for i, goos := range list("goos") {
		goarch := archs[i%len(archs)] // each architecture is built for some system
		t.Run(goos+"/"+goarch, func(t *testing.T) {
			cmd := exec.Command("go", "build", "-trimpath", "-o", os.DevNull, ".")
			cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build for %s/%s: %v\n%s", goos, goarch, err, out)
			}
		})
	}
}

// TestDockerBuildIsStatic runs the Dockerfile's go build line and checks
// the binary needs no C library, as the distroless static image requires.
// (No Docker engine runs where the tests do; this is the part of the image
// build that can break without one.)
func TestDockerBuildIsStatic(t *testing.T) {
	testtier.SkipUnlessSlow(t)
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`RUN (CGO_ENABLED=0 go build [^\n\\&]*)`).FindSubmatch(df)
	if m == nil {
		t.Fatal("the Dockerfile has no CGO_ENABLED=0 go build line")
	}
	bin := filepath.Join(t.TempDir(), "keygate")
	line := strings.ReplaceAll(string(m[1]), "${VERSION}", "test")
	line = strings.ReplaceAll(line, "/out/keygate", bin)
	cmd := exec.Command("sh", "-c", line)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary asks for a dynamic loader: it would not run on a static image")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("the binary needs %v", libs)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test") {
		t.Fatalf("keygate version: %v\n%s", err, out)
	}
}
