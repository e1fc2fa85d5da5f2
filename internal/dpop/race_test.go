//go:build race

package dpop

// raceAllocSlack is added to allocation ceilings under the race
// detector, which adds allocations of its own (7 per proof measured).
const raceAllocSlack = 10
