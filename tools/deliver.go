package tools

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/keygate/keygate/auth"
)

// delivery is where a newly issued secret goes. The default is never to
// show it: it goes to a file the user controls.
type delivery struct {
	kind   string // "env", "file", "keysdir" or "reveal"
	target string // variable name, file path, or keys directory
}

func (dl delivery) String() string {
	switch dl.kind {
	case "env":
		return "env:" + dl.target
	case "file":
		return "file:" + dl.target
	case "keysdir":
		return "file:" + filepath.Join(dl.target, "<key id>.token")
	}
	return "reveal"
}

// defaultDelivery is where a new secret goes when the caller names no
// destination: a new 0600 file named after the key in keygate's keys
// directory, beside the store. It never reveals, and never touches a file
// the user edits.
func (d *Deps) defaultDelivery() (delivery, *Problem) {
	if d.KeysDir == "" {
		return delivery{}, &Problem{Field: "deliver", Problem: "is required: keygate has no keys directory for new secrets", Fix: deliverFix}
	}
	return delivery{kind: "keysdir", target: d.KeysDir}, nil
}

const deliverFix = `use "env:VAR" (written to the env file), "file:PATH" (a new file, mode 0600) or "reveal" (shown once in the result)`

// deliverToKeysDir stands for the default delivery inside the rotate
// handler, where "" means "kept in memory only".
const deliverToKeysDir = "\x00keysdir"

// deliveryArg reads the deliver argument, with the keys directory as the
// default destination.
func (d *Deps) deliveryArg(s string) (delivery, *Problem) {
	if s == "" || s == deliverToKeysDir {
		return d.defaultDelivery()
	}
	return parseDeliver(s)
}

func parseDeliver(s string) (delivery, *Problem) {
	switch {
	case s == "reveal":
		return delivery{kind: "reveal"}, nil
	case strings.HasPrefix(s, "env:"):
		name := strings.TrimPrefix(s, "env:")
		if !auth.IsEnvName(name) {
			return delivery{}, &Problem{Field: "deliver", Problem: fmt.Sprintf("%q is not a variable name", name), Fix: "use letters, digits and _, not starting with a digit"}
		}
		return delivery{kind: "env", target: name}, nil
	case strings.HasPrefix(s, "file:"):
		p := strings.TrimPrefix(s, "file:")
		if p == "" || strings.ContainsAny(p, "\x00\r\n") {
			return delivery{}, &Problem{Field: "deliver", Problem: "the file path is empty or has control characters", Fix: "give a path such as file:./keys/ci.token"}
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return delivery{}, &Problem{Field: "deliver", Problem: "the file path cannot be resolved", Fix: "give an absolute path"}
		}
		return delivery{kind: "file", target: abs}, nil
	}
	return delivery{}, &Problem{Field: "deliver", Problem: fmt.Sprintf("%q is not a delivery", s), Fix: deliverFix}
}

// preflight checks, before any key is created, that the delivery can
// succeed, so a refusal leaves nothing behind.
func (d *Deps) preflight(dl delivery, overwrite bool) *Problem {
	switch dl.kind {
	case "env":
		if d.EnvFile == "" {
			return &Problem{Field: "deliver", Problem: "no env file is configured", Fix: "start keygate with --env-file, or use file:PATH or reveal"}
		}
		if fi, err := os.Lstat(d.EnvFile); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return &Problem{Field: "deliver", Problem: "the env file is a symlink, which keygate does not write through", Fix: "point --env-file at the real file"}
		}
		vars, err := auth.ReadEnvFile(d.EnvFile)
		if err != nil {
			return &Problem{Field: "deliver", Problem: "the env file cannot be read: " + err.Error(), Fix: "fix the env file, or use file:PATH"}
		}
		if _, exists := vars[dl.target]; exists && !overwrite {
			return &Problem{Field: "deliver", Problem: fmt.Sprintf("%s is already set in %s and keygate never overwrites it", dl.target, d.EnvFile), Fix: "choose another variable name"}
		}
		if err := dirWritable(filepath.Dir(d.EnvFile)); err != nil {
			return &Problem{Field: "deliver", Problem: "the env file's directory is not writable", Fix: "make it writable, or use file:PATH"}
		}
	case "keysdir":
		if err := os.MkdirAll(dl.target, 0o700); err != nil || dirWritable(dl.target) != nil {
			return &Problem{Field: "deliver", Problem: fmt.Sprintf("cannot write into keygate's keys directory %s", dl.target), Fix: "make it writable, or pass deliver explicitly"}
		}
	case "file":
		if !d.fileDeliveryAllowed(dl.target) {
			return &Problem{Field: "deliver", Problem: fmt.Sprintf("%s is outside the directories keygate writes secrets to", dl.target),
				Fix: fmt.Sprintf("name a new file under %s (keygate's keys directory) or beside the env file, or leave deliver out", d.KeysDir)}
		}
		if _, err := os.Lstat(dl.target); err == nil {
			return &Problem{Field: "deliver", Problem: fmt.Sprintf("%s already exists and keygate never overwrites it", dl.target), Fix: "choose a new file name"}
		}
		if err := dirWritable(filepath.Dir(dl.target)); err != nil {
			return &Problem{Field: "deliver", Problem: fmt.Sprintf("cannot write into %s", filepath.Dir(dl.target)), Fix: "choose an existing, writable directory"}
		}
	}
	return nil
}

// fileDeliveryAllowed confines file: deliveries to keygate's keys directory
// and the env file's directory, so a model cannot have a secret written
// anywhere the process may write. Symlinks in the path are resolved first.
func (d *Deps) fileDeliveryAllowed(target string) bool {
	dir, err := filepath.EvalSymlinks(filepath.Dir(target))
	if err != nil {
		return false
	}
	target = filepath.Join(dir, filepath.Base(target))
	for _, base := range []string{d.KeysDir, filepath.Dir(d.EnvFile)} {
		if base == "" || base == "." && d.EnvFile == "" {
			continue
		}
		if b, err := filepath.EvalSymlinks(base); err == nil {
			base = b
		}
		if rel, err := filepath.Rel(base, target); err == nil && filepath.IsLocal(rel) {
			return true
		}
	}
	return false
}

// dirWritable proves a directory takes new files by creating and removing one.
func dirWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".keygate-probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	return errors.Join(f.Close(), os.Remove(name))
}

// deliver puts the secret where dl says and returns where it went (a
// keys-directory delivery becomes the file it wrote). For "reveal" it marks
// the secret as allowed through this call's redaction pass.
func (d *Deps) deliver(call *Call, dl delivery, s auth.Secret, overwrite bool, keyID string) (delivery, error) {
	switch dl.kind {
	case "env":
		return dl, auth.SetEnvVar(d.EnvFile, dl.target, s.Reveal(), auth.EnvWriteOptions{Overwrite: overwrite})
	case "keysdir":
		dl = delivery{kind: "file", target: filepath.Join(dl.target, keyID+".token")}
		fallthrough
	case "file":
		return dl, auth.WriteSecretFile(dl.target, s.Reveal())
	default:
		call.Reveal(s)
		return dl, nil
	}
}

// deliveredNote tells the user where the secret went, without the secret.
func (d *Deps) deliveredNote(dl delivery) string {
	switch dl.kind {
	case "env":
		note := fmt.Sprintf("written to %s as %s (mode 0600)", d.EnvFile, dl.target)
		if setInProcessEnv(dl.target) {
			note += fmt.Sprintf("; note: %s is also set in keygate's environment (e.g. a client config), which wins over the env file at the next start: replace it there or remove it", dl.target)
		}
		return note
	case "file":
		return fmt.Sprintf("written to %s (mode 0600)", dl.target)
	}
	return "shown once in this result as token: store it now, it cannot be shown again"
}

// setInProcessEnv reports whether name is set in keygate's own environment
// (for example by a client config), where it wins over the env file.
func setInProcessEnv(name string) bool {
	v, ok := os.LookupEnv(name)
	return ok && v != ""
}
