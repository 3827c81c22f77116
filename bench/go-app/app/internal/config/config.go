// Package config reads the service's settings from the environment.
package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the service's settings.
type Config struct {
	Addr         string
	Secret       []byte
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	PageSize     int
	Admins       []string
}

// FromEnv reads SVC_* variables, with defaults.
func FromEnv(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := Config{Addr: ":8080", ReadTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second, PageSize: 50}
	if v := getenv("SVC_ADDR"); v != "" {
		c.Addr = v
	}
	c.Secret = []byte(getenv("SVC_SECRET"))
	if len(c.Secret) < 16 {
		return c, fmt.Errorf("SVC_SECRET: want at least 16 bytes, have %d", len(c.Secret))
	}
	for name, d := range map[string]*time.Duration{"SVC_READ_TIMEOUT": &c.ReadTimeout, "SVC_WRITE_TIMEOUT": &c.WriteTimeout} {
		if v := getenv(name); v != "" {
			p, err := time.ParseDuration(v)
			if err != nil {
				return c, fmt.Errorf("%s: %w", name, err)
			}
			*d = p
		}
	}
	if v := getenv("SVC_PAGE_SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return c, fmt.Errorf("SVC_PAGE_SIZE: %q is not 1–1000", v)
		}
		c.PageSize = n
	}
	for _, a := range strings.Split(getenv("SVC_ADMINS"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.Admins = append(c.Admins, a)
		}
	}
	return c, nil
}
