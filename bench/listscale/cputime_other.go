//go:build !linux

package main

import "time"

// threadCPU is measured on Linux only.
func threadCPU() (time.Duration, bool) { return 0, false }

// procCPU is measured on Linux only.
func procCPU(int) (time.Duration, bool) { return 0, false }
