package bff

import (
	"net"
	"os"
	"sync"
	"syscall"
)

// hangups watches the connections of parked streams with one epoll
// instance and calls a stream's gone once its peer closes the connection,
// sends anything (an event stream's client sends nothing after its
// request) or the connection fails (e.g. TCP keep-alive gave up). The
// instance sits in Go's own poller, so waiting costs no thread; it exists,
// with its goroutine, only while connections are watched.
type hangups struct {
	mu   sync.Mutex
	ep   *os.File // nil while nothing is watched
	epfd int
	next int32
	by   map[int32]func()
}

// watch registers conn; ok is false when conn has no socket to watch.
func (h *hangups) watch(conn net.Conn, gone func()) (token int32, ok bool) {
	sc, ok := socketOf(conn)
	if !ok {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	h.mu.Lock()
	if h.ep == nil && !h.start() {
		h.mu.Unlock()
		return 0, false
	}
	for token = h.next + 1; token == 0 || h.by[token] != nil; token++ {
	}
	h.next = token
	var cerr error
	err = rc.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: token}
		cerr = syscall.EpollCtl(h.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil || cerr != nil {
		idle := h.detachIfIdle()
		h.mu.Unlock()
		closeIdle(idle)
		return 0, false
	}
	h.by[token] = gone
	h.mu.Unlock()
	return token, true
}

// unwatch forgets a token (0: none). Closing the connection removes it
// from the epoll instance.
func (h *hangups) unwatch(token int32) {
	if token == 0 {
		return
	}
	h.mu.Lock()
	delete(h.by, token)
	idle := h.detachIfIdle()
	h.mu.Unlock()
	closeIdle(idle)
}

// start makes the epoll instance and its goroutine; h.mu is held.
func (h *hangups) start() bool {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return false
	}
	// Non-blocking, os.NewFile puts it in Go's poller.
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return false
	}
	h.ep, h.epfd = os.NewFile(uintptr(fd), "bff-events-epoll"), fd
	if h.by == nil {
		h.by = map[int32]func(){}
	}
	go h.loop(h.ep)
	return true
}

// detachIfIdle forgets the instance once nothing is watched and returns
// it, for closeIdle after h.mu is released; h.mu is held. Closing it here
// would deadlock: Close waits for the watcher's Read to let go of the
// instance, and the watcher's callback, inside that Read, waits for h.mu
// (TestHangupsUnwatchWhileFiring).
func (h *hangups) detachIfIdle() *os.File {
	if len(h.by) != 0 || h.ep == nil {
		return nil
	}
	ep := h.ep
	h.ep = nil
	return ep
}

// closeIdle closes an instance detachIfIdle returned (nil: none); its
// watcher goroutine then ends.
func closeIdle(ep *os.File) {
	if ep != nil {
		ep.Close()
	}
}

func (h *hangups) loop(ep *os.File) {
	rc, err := ep.SyscallConn()
	if err != nil {
		return
	}
	events := make([]syscall.EpollEvent, 128)
	for {
		var fired []func()
		var failed bool
		err := rc.Read(func(fd uintptr) bool {
			n, err := syscall.EpollWait(int(fd), events, 0)
			if err == syscall.EINTR || (err == nil && n == 0) {
				return false // wait for Go's poller to say it is ready
			}
			if err != nil {
				failed = true
				return true
			}
			h.mu.Lock()
			for _, ev := range events[:n] {
				if gone := h.by[ev.Fd]; gone != nil {
					delete(h.by, ev.Fd)
					fired = append(fired, gone)
				}
			}
			h.mu.Unlock()
			return true
		})
		for _, gone := range fired {
			gone()
		}
		if err != nil || failed {
			return
		}
		h.mu.Lock()
		var idle *os.File
		if h.ep == ep {
			idle = h.detachIfIdle()
		}
		h.mu.Unlock()
		if idle != nil {
			closeIdle(idle)
			return // this watcher's instance is closed
		}
	}
}

// socketOf finds the socket under conn, through wrappers that expose
// what they wrap (crypto/tls, the gateway's connection limiter).
func socketOf(conn net.Conn) (syscall.Conn, bool) {
	for {
		if sc, ok := conn.(syscall.Conn); ok {
			return sc, true
		}
		u, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			return nil, false
		}
		conn = u.NetConn()
	}
}
