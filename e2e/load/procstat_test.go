//go:build loadbench

package load

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// which Linux fixes at 100 for user space whatever the kernel's HZ.
const clockTick = 10 * time.Millisecond

// cpuTime is the CPU a process has used so far, user and system
// (utime + stime of /proc/<pid>/stat), at clockTick resolution.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after the last ')'. utime and stime are fields 14, 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return time.Duration(u+st) * clockTick, nil
}

// statusKiB is a "kB" line of /proc/<pid>/status, e.g. VmRSS.
func statusKiB(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, key)
}

// cpuMeter measures one process's CPU over an interval.
type cpuMeter struct {
	pid   int
	start time.Duration
	err   error
}

func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid}
	if pid > 0 {
		m.start, m.err = cpuTime(pid)
	}
	return m
}

// used is the CPU since startCPU, or -1 when it could not be read.
func (m *cpuMeter) used() time.Duration {
	if m.pid <= 0 || m.err != nil {
		return -1
	}
	end, err := cpuTime(m.pid)
	if err != nil {
		return -1
	}
	return end - m.start
}

// procFDLimit is the soft "Max open files" of /proc/<pid>/limits, 0 if
// unknown.
func procFDLimit(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Max open files"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// settledRSS is the process's VmRSS (KiB) once it stops moving: polled
// every 500 ms until two readings in a row differ by under 0.5 %, for at
// most 10 s (the gateway's GC runs on its own schedule; nothing is
// exposed to force it).
func settledRSS(pid int) int64 {
	last, _ := statusKiB(pid, "VmRSS")
	deadline := time.Now().Add(10 * time.Second)
	stable := 0
	for time.Now().Before(deadline) && stable < 2 {
		time.Sleep(500 * time.Millisecond)
		v, err := statusKiB(pid, "VmRSS")
		if err != nil {
			return last
		}
		if d := v - last; d*200 < last && -d*200 < last {
			stable++
		} else {
			stable = 0
		}
		last = v
	}
	return last
}
