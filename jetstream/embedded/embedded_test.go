package embedded_test

import (
	"errors"
	"testing"

	"github.com/seed-bb9ff1e7/jobq/jetstream/embedded"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSecondServerOnAFolderIsRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := embedded.Start(embedded.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := embedded.Start(embedded.Options{Dir: dir}); !errors.Is(err, embedded.ErrLocked) {
		t.Fatalf("second Start: %v, want ErrLocked", err)
	}
	s.Shutdown()
	// The lock goes with the server.
	s2, err := embedded.Start(embedded.Options{Dir: dir, Port: s.Port()})
	if err != nil {
		t.Fatalf("Start after Shutdown: %v", err)
	}
	defer s2.Shutdown()
	if s2.URL() == "" || s2.Port() != s.Port() {
		t.Errorf("URL %q port %d, want port %d", s2.URL(), s2.Port(), s.Port())
	}
}

func TestConnectInProcessWithoutListening(t *testing.T) {
	s, err := embedded.Start(embedded.Options{Dir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if s.URL() != "" {
		t.Errorf("URL %q, want none", s.URL())
	}
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestStartPanicsWithoutDir(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("no panic")
		}
	}()
	embedded.Start(embedded.Options{})
}
