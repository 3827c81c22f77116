package proxmox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lian-build/action/internal/safefile"
)

// The provider speaks the Proxmox VE REST API (/api2/json) itself rather
// than through github.com/luthermonson/go-proxmox: it needs nine calls —
// next id, clone, config, start, the guest agent's interfaces, stop,
// delete, task status and the cluster's VM list — and wants their error
// bodies and task polling (backoff, a failed task's exit status) in its
// own hands; the client library would add a dependency tree for features
// a runner does not use.

// api is a Proxmox VE API client with token auth.
type api struct {
	base  string // https://host:8006/api2/json
	token string // USER@REALM!TOKENID=SECRET
	hc    *http.Client
}

// APIError is the API answering with an error status.
type APIError struct {
	Method, Path string
	Status       int
	Msg          string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("proxmox: %s %s: %d %s", e.Method, e.Path, e.Status, e.Msg)
}

func newAPI(endpoint, token, caFile string) (*api, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := safefile.Read(caFile, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", caFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &api{base: strings.TrimRight(endpoint, "/"), token: token, hc: &http.Client{Transport: tr, Timeout: time.Minute}}, nil
}

// do sends a form-encoded request and decodes the answer's "data" into out.
func (a *api) do(ctx context.Context, method, path string, form url.Values, out any) error {
	var body io.Reader
	u := a.base + path
	if form != nil && (method == http.MethodGet || method == http.MethodDelete) {
		u += "?" + form.Encode()
	} else if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "PVEAPIToken="+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("proxmox: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		// The API puts the reason in the status line, and parameter errors in "errors".
		msg := strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode)))
		var e struct {
			Errors map[string]string `json:"errors"`
		}
		if json.Unmarshal(b, &e) == nil && len(e.Errors) > 0 {
			msg += fmt.Sprintf(" %v", e.Errors)
		}
		return &APIError{Method: method, Path: path, Status: resp.StatusCode, Msg: msg}
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("proxmox: %s %s: answer: %w", method, path, err)
	}
	if out == nil || len(env.Data) == 0 || string(env.Data) == "null" {
		return nil
	}
	return json.Unmarshal(env.Data, out)
}

// Task is a task's status (GET /nodes/{node}/tasks/{upid}/status).
type Task struct {
	Status     string `json:"status"`     // running, stopped
	ExitStatus string `json:"exitstatus"` // OK, or what failed
	Type       string `json:"type"`
}

// wait polls a task until it stops, backing off from 100 ms to 2 s; a
// task that stopped with another exit status than OK is an error.
func (a *api) wait(ctx context.Context, node, upid string) error {
	if upid == "" {
		return nil // a synchronous call
	}
	delay := 100 * time.Millisecond
	for {
		var t Task
		if err := a.do(ctx, http.MethodGet, "/nodes/"+node+"/tasks/"+url.PathEscape(upid)+"/status", nil, &t); err != nil {
			return err
		}
		if t.Status == "stopped" {
			if t.ExitStatus != "OK" {
				return fmt.Errorf("proxmox: task %s (%s) failed: %s", t.Type, upid, t.ExitStatus)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("proxmox: task %s still running: %w", upid, ctx.Err())
		case <-time.After(delay):
			delay = min(2*delay, 2*time.Second)
		}
	}
}

// Resource is one VM of GET /cluster/resources?type=vm.
type Resource struct {
	VMID     int    `json:"vmid"`
	Name     string `json:"name"`
	Node     string `json:"node"`
	Status   string `json:"status"`
	Tags     string `json:"tags"`
	Template int    `json:"template"`
}

// Interface is one of the guest agent's network-get-interfaces.
type Interface struct {
	Name        string `json:"name"`
	IPAddresses []struct {
		Address string `json:"ip-address"`
		Type    string `json:"ip-address-type"`
		Prefix  int    `json:"prefix"`
	} `json:"ip-addresses"`
}

// isNotFound is a VM that does not exist: the API answers 500 "Configuration
// file 'nodes/…/qemu-server/N.conf' does not exist" (or 404 from a proxy).
func isNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusNotFound || strings.Contains(ae.Msg, "does not exist"))
}
