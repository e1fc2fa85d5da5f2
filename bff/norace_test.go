//go:build !race

package bff

// raceAllocSlack is added to allocation ceilings under the race detector.
const raceAllocSlack = 0
