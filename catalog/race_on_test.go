//go:build race

package catalog

// raceEnabled is true under the race detector, which makes the million-row streaming test
// too slow to be worth running there; the plain run covers it.
const raceEnabled = true
