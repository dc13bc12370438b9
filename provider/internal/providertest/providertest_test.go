package providertest

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	c := NewClock()
	start := c.Now()
	var seen []time.Duration
	c.OnSleep = func(d time.Duration) { seen = append(seen, d) }
	for _, d := range []time.Duration{time.Second, time.Minute} {
		if err := c.Sleep(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Now().Sub(start); got != time.Second+time.Minute {
		t.Errorf("moved %s", got)
	}
	if !slices.Equal(c.Slept(), seen) || len(seen) != 2 {
		t.Errorf("slept %v, hook saw %v", c.Slept(), seen)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Sleep(ctx, time.Hour); err == nil || len(c.Slept()) != 2 {
		t.Errorf("a cancelled sleep: %v, %v", err, c.Slept())
	}
}

func TestEnv(t *testing.T) {
	e := Env{"A": "1", "B": "2"}
	with, without := e.With("A", "9"), e.Without("B")
	if v, src, ok := with.Get("A"); v != "9" || src != "env" || !ok {
		t.Errorf("With: %q %q %v", v, src, ok)
	}
	if _, _, ok := without.FromFile("B"); ok {
		t.Error("Without kept B")
	}
	if v, src, _ := e.FromFile("A"); v != "1" || src != "env_file" {
		t.Errorf("the original changed or FromFile is wrong: %q %q", v, src)
	}
}
