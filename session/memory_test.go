package session_test

import (
	"testing"

	"github.com/bffgate/bffgate/session"
	"github.com/bffgate/bffgate/session/storetest"
)

func TestMemoryStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg storetest.Config) session.Store {
		s := session.NewMemoryStore(session.MemoryConfig{Timeouts: cfg.Timeouts, Now: cfg.Now})
		t.Cleanup(func() { s.Close() })
		return s
	})
}
