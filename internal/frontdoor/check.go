package frontdoor

import (
	"net"
	"strconv"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/cache"
)

// Check validates the settings a long-running service (the gateway) fixes
// at start for every build, without creating or opening anything: what a
// build would refuse later is refused now, naming the setting.
func (s Settings) Check() error {
	if err := s.checkProvider(); err != nil {
		return err
	}
	if s.Registry != "" {
		if err := cache.ValidRegistry(s.Registry); err != nil {
			return &buildkit.InputError{Field: s.name("registry"), Value: s.Registry, Msg: "want HOST[:PORT][/PREFIX] (a lower-case path)"}
		}
	}
	if s.RegistryProvider != "" {
		if _, err := cache.ParseProvider(s.RegistryProvider); err != nil {
			return &buildkit.InputError{Field: s.name("registry-provider"), Value: s.RegistryProvider, Msg: err.Error()}
		}
	}
	for _, h := range s.Insecure {
		if host, port, err := net.SplitHostPort(h); err != nil || host == "" || !validPort(port) {
			return &buildkit.InputError{Field: s.name("insecure-registries"), Value: h, Msg: "want HOST:PORT"}
		}
	}
	if _, err := s.size("state-store-size", s.StateStoreSize); err != nil {
		return err
	}
	if _, err := s.stateMax(); err != nil {
		return err
	}
	return nil
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}

// CheckListen checks a listen address HOST:PORT (HOST may be empty).
func CheckListen(field, addr string) error {
	if _, port, err := net.SplitHostPort(addr); err != nil || !validPort(port) {
		return &buildkit.InputError{Field: field, Value: addr, Msg: "want HOST:PORT with a port from 0 to 65535"}
	}
	return nil
}
