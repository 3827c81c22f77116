package pool

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to a pool service.
type Client struct {
	URL   string // e.g. http://pool:8090
	Token string
	HTTP  *http.Client // default: a client without a timeout (ctx bounds each call)
}

// APIError is a pool answering with an error status.
type APIError struct {
	Status int
	Msg    string
	Field  string // the request field at fault, for a 400
}

func (e *APIError) Error() string {
	return fmt.Sprintf("vm-pool: %d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
}

// Lease asks for a VM.
func (c *Client) Lease(ctx context.Context, req Request) (Grant, error) {
	var g Grant
	return g, c.do(ctx, http.MethodPost, PathLeases, req, &g)
}

// Return ends a lease with its outcome.
func (c *Client) Return(ctx context.Context, leaseID, outcome string) (Disposition, error) {
	var d Disposition
	return d, c.do(ctx, http.MethodDelete, PathLeases+"/"+url.PathEscape(leaseID), Return{Outcome: outcome}, &d)
}

// List reads the pool's VMs.
func (c *Client) List(ctx context.Context) ([]VM, error) {
	var out struct {
		VMs []VM `json:"vms"`
	}
	return out.VMs, c.do(ctx, http.MethodGet, PathLeases, nil, &out)
}

// Drain retires every idle VM and names them.
func (c *Client) Drain(ctx context.Context) ([]string, error) {
	var out struct {
		Retired []string `json:"retired"`
	}
	return out.Retired, c.do(ctx, http.MethodPost, PathDrain, nil, &out)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.URL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("vm-pool: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 15 * time.Minute}}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("vm-pool: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("vm-pool: %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var ae apiError
		if json.Unmarshal(b, &ae) != nil || ae.Error == "" {
			ae.Error = strings.TrimSpace(string(b))
		}
		return &APIError{Status: resp.StatusCode, Msg: ae.Error, Field: ae.Field}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("vm-pool: %s %s: answer: %w", method, path, err)
	}
	return nil
}
