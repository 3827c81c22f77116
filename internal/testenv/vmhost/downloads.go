package vmhost

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/lian-build/action/internal/compute/hcloud"
	"github.com/lian-build/action/internal/compute/remote"
)

// Downloads serves what a stock-image server downloads at boot — a
// buildkitd and buildctl as BuildKit's release tarball lays them out
// (bin/…), and a runc — on a port of this machine's loopback that VMs
// reach at ServicesIP (Forward it). The pins are the files' sha256 for
// amd64, the VMs' architecture.
type Downloads struct {
	Port                   int
	BuildkitURL, RuncURL   string
	BuildkitPins, RuncPins map[string]string

	srv    *http.Server
	done   chan struct{}
	served atomic.Int64
}

// Served is how many files were served (a runner image's boot takes none).
func (d *Downloads) Served() int64 { return d.served.Load() }

// ServeDownloads lays the files out in dir and serves them until Close.
func ServeDownloads(dir, buildkitd, runc string) (*Downloads, error) {
	tgz := filepath.Join(dir, "buildkit-amd64.tar.gz")
	if err := writeTarGz(tgz, "bin/", buildkitd, filepath.Join(filepath.Dir(buildkitd), "buildctl")); err != nil {
		return nil, err
	}
	runcFile := filepath.Join(dir, "runc-amd64")
	if err := copyFile(runc, runcFile); err != nil {
		return nil, err
	}
	bkSum, err := fileSHA256(tgz)
	if err != nil {
		return nil, err
	}
	runcSum, err := fileSHA256(runcFile)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	base := fmt.Sprintf("http://%s:%d/", ServicesIP, port)
	d := &Downloads{Port: port, BuildkitURL: base + "buildkit-{arch}.tar.gz", RuncURL: base + "runc-{arch}",
		BuildkitPins: map[string]string{"amd64": bkSum}, RuncPins: map[string]string{"amd64": runcSum},
		done: make(chan struct{})}
	files := http.FileServer(http.Dir(dir))
	d.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.served.Add(1)
		files.ServeHTTP(w, r)
	})}
	go func() { defer close(d.done); _ = d.srv.Serve(ln) }()
	return d, nil
}

// Software is what a server downloads from here (the VMs are amd64).
func (d *Downloads) Software() remote.Software {
	return remote.Software{Buildkit: remote.For(d.BuildkitURL, d.BuildkitPins, "amd64"), Runc: remote.RuncFor(d.RuncURL, d.RuncPins, "amd64")}
}

// HCloud points a Hetzner provider's servers here: x86 servers (the VMs'
// architecture) downloading buildkitd and runc from this server.
func (d *Downloads) HCloud(s hcloud.Settings) hcloud.Settings {
	s.Arch, s.BuildkitURL, s.BuildkitPins, s.RuncURL, s.RuncPins = "x86", d.BuildkitURL, d.BuildkitPins, d.RuncURL, d.RuncPins
	return s
}

// Flags are lian-build's flags that make servers download from here.
func (d *Downloads) Flags() []string {
	return []string{"--hcloud-buildkit-url", d.BuildkitURL, "--hcloud-buildkit-sha256", "amd64=" + d.BuildkitPins["amd64"],
		"--hcloud-runc-url", d.RuncURL, "--hcloud-runc-sha256", "amd64=" + d.RuncPins["amd64"]}
}

// Close stops serving.
func (d *Downloads) Close() {
	_ = d.srv.Close()
	<-d.done
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeTarGz writes files into a gzipped tarball under prefix.
func writeTarGz(path, prefix string, files ...string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: prefix + filepath.Base(name), Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return f.Close()
}
