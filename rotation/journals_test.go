//go:build unix

package rotation_test

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/rotation"
	"github.com/keygate/keygate/rotation/rotationtest"
)

// TestJournalsBehaveAlike holds both Journals to the contract the engine
// relies on: one holder per slot, the journal read back as written, listed
// while it exists, gone once removed, and the lock free again on release.
func TestJournalsBehaveAlike(t *testing.T) {
	for _, jk := range journalKinds {
		t.Run(jk, func(t *testing.T) {
			f := newFixture(t, "local", rotationtest.Options{})
			f.useJournalsWait(jk, 200*time.Millisecond)
			eng := f.engine()
			must(t, os.MkdirAll(eng.Dir, 0o700))
			js := f.journals
			if js == nil {
				js = rotation.FileJournals(eng)
			}
			ctx := t.Context()
			// The legacy slot: the file lock refuses at once, Postgres after
			// its wait; both with ErrInProgress.
			lk, err := js.Lock(ctx, eng.Name, tokenVar)
			must(t, err)
			if _, err := js.Lock(ctx, eng.Name, tokenVar); !errors.Is(err, rotation.ErrInProgress) {
				t.Fatalf("second Lock = %v, want ErrInProgress", err)
			}
			if rec, err := lk.Load(ctx); err != nil || rec != nil {
				t.Fatalf("Load of an empty slot = %+v, %v", rec, err)
			}
			data := []byte(`{"version":2,"rotation_id":"rot-0123456789abcdef01234567","slot":"` + tokenVar + `","step":"creating"}`)
			must(t, lk.Save(ctx, rotation.JournalRecord{RotationID: "rot-0123456789abcdef01234567", Step: rotation.StepCreating, Data: data}))
			rec, err := lk.Load(ctx)
			if err != nil || rec == nil || !strings.Contains(string(rec.Data), `"rot-0123456789abcdef01234567"`) || rec.Where == "" {
				t.Fatalf("Load = %+v, %v", rec, err)
			}
			if slots, err := js.Slots(ctx, eng.Name); err != nil || !slices.Equal(slots, []string{tokenVar}) {
				t.Fatalf("Slots = %v, %v", slots, err)
			}
			must(t, lk.Remove(ctx, nil))
			if rec, err := lk.Load(ctx); err != nil || rec != nil {
				t.Fatalf("Load after Remove = %+v, %v", rec, err)
			}
			if slots, err := js.Slots(ctx, eng.Name); err != nil || len(slots) != 0 {
				t.Fatalf("Slots after Remove = %v, %v", slots, err)
			}
			lk.Release()
			again, err := js.Lock(ctx, eng.Name, tokenVar)
			if err != nil {
				t.Fatalf("Lock after Release: %v", err)
			}
			again.Release()
		})
	}
}
