package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Prometheus is a Prometheus server (Debian's prometheus package) scraping
// its targets' /metrics and evaluating its rules every second; it stops
// with the test.
type Prometheus struct {
	URL string
}

// StartPrometheus starts it on a loopback port, scraping targets
// (HOST:PORT) and evaluating the rule files.
func StartPrometheus(t testing.TB, targets []string, ruleFiles ...string) *Prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		missingPrereq(t, "prometheus (Debian's prometheus package: make deps)")
	}
	dir := t.TempDir()
	quote := func(ss []string) string {
		var q []string
		for _, s := range ss {
			q = append(q, strconv.Quote(s))
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: %s\nscrape_configs:\n  - job_name: lian-build\n    static_configs:\n      - targets: %s\n",
		quote(ruleFiles), quote(targets))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file", filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", addr, "--log.level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	p := &Prometheus{URL: "http://" + addr}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(p.URL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Fatalf("prometheus is not ready after 30 s:\n%s", b)
		}
	}
}

// Sample is one series of an instant query's answer.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query evaluates expr now (an instant vector).
func (p *Prometheus) Query(ctx context.Context, expr string) ([]Sample, error) {
	var out []Sample
	err := p.query(ctx, expr, func(metric map[string]string, values [][2]any) error {
		v, err := value(values[len(values)-1])
		out = append(out, Sample{Metric: metric, Value: v})
		return err
	})
	return out, err
}

// Series are the samples of a range vector selector, e.g. x[1h], each
// series' values in time order.
type Series struct {
	Metric map[string]string
	Values []float64
}

// QueryRange evaluates a range vector selector now.
func (p *Prometheus) QueryRange(ctx context.Context, expr string) ([]Series, error) {
	var out []Series
	err := p.query(ctx, expr, func(metric map[string]string, values [][2]any) error {
		s := Series{Metric: metric}
		for _, pair := range values {
			v, err := value(pair)
			if err != nil {
				return err
			}
			s.Values = append(s.Values, v)
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

// CounterTotal is what a counter counted over its samples: from zero at
// its first (the process started within the range), and across resets (a
// restart counts again from zero).
func (s Series) CounterTotal() float64 {
	var total, prev float64
	for _, v := range s.Values {
		if v >= prev {
			total += v - prev
		} else {
			total += v
		}
		prev = v
	}
	return total
}

func (p *Prometheus) query(ctx context.Context, expr string, each func(map[string]string, [][2]any) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/v1/query?query="+url.QueryEscape(expr), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  *[2]any           `json:"value"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return fmt.Errorf("prometheus: %s: %w", expr, err)
	}
	if out.Status != "success" {
		return fmt.Errorf("prometheus: %s: %s", expr, out.Error)
	}
	for _, r := range out.Data.Result {
		values := r.Values
		if r.Value != nil {
			values = [][2]any{*r.Value}
		}
		if len(values) == 0 {
			continue
		}
		if err := each(r.Metric, values); err != nil {
			return fmt.Errorf("prometheus: %s: %w", expr, err)
		}
	}
	return nil
}

// value is a sample's value: the API gives [time, "value"].
func value(pair [2]any) (float64, error) {
	s, _ := pair[1].(string)
	return strconv.ParseFloat(s, 64)
}
