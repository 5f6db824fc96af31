//go:build race

package gateway

// raceEnabled: the race detector's instrumentation enlarges frames, so
// stack sizes measured under it are not those of a normal build.
const raceEnabled = true
