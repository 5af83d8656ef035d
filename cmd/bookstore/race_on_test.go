//go:build race

package main

// raceBuild: the crash tests build the binary with -race too, so it reuses the test's
// compiled packages (and the race detector watches the real process).
const raceBuild = true
