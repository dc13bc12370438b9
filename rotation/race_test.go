//go:build race && unix

package rotation_test

func init() { raceEnabled = true }
