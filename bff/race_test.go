//go:build race

package bff

// raceAllocSlack is added to allocation ceilings under the race detector,
// whose sync.Pool drops a share of what is put back.
const raceAllocSlack = 1
