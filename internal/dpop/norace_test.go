//go:build !race

package dpop

// raceAllocSlack is added to allocation ceilings under the race detector.
const raceAllocSlack = 0
