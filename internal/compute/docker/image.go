package docker

import (
	"archive/tar"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/moby/client"
)

// ImageFiles are the programs of a BuildKit runner image: where each goes
// in the image and where it is on this machine.
type ImageFiles struct {
	Buildkitd, Buildctl, Runc, Busybox string
}

// libDirs are where the dynamic linker of a Debian or Ubuntu machine looks.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/lib", "/usr/lib"}

// ImportImage makes a BuildKit runner image from this machine's binaries
// and imports it into the engine as ref — no registry, no Dockerfile: the
// programs, the shared libraries they need (read from their ELF headers),
// and busybox for the boot script's shell and mount. The engine's own
// image import is the only API used.
func ImportImage(ctx context.Context, c *client.Client, ref string, f ImageFiles) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeRootfs(pw, f)) }()
	res, err := c.ImageImport(ctx, client.ImageImportSource{Source: pr, SourceName: "-"}, ref, client.ImageImportOptions{
		Message: "lian-build runner: buildkitd, buildctl, runc, busybox",
		Changes: []string{`ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`, `LABEL dev.lian-build.runner-image=1`},
	})
	if err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("docker: import image %s: %w", ref, err)
	}
	defer res.Close()
	_, err = io.Copy(io.Discard, res)
	return err
}

// tarWriter writes each directory once (the engine refuses duplicate paths).
type tarWriter struct {
	*tar.Writer
	dirs map[string]bool
}

func (tw *tarWriter) dir(d string) error {
	d = strings.Trim(d, "/")
	if d == "" || d == "." || tw.dirs[d] {
		return nil
	}
	if err := tw.dir(filepath.Dir(d)); err != nil {
		return err
	}
	tw.dirs[d] = true
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755})
}

func writeRootfs(w io.Writer, f ImageFiles) error {
	tw := &tarWriter{Writer: tar.NewWriter(w), dirs: map[string]bool{}}
	files := map[string]string{
		"/usr/local/bin/buildkitd": f.Buildkitd, "/usr/local/bin/buildctl": f.Buildctl,
		"/usr/bin/runc": f.Runc, "/bin/busybox": f.Busybox,
	}
	for _, bin := range []string{f.Buildkitd, f.Buildctl, f.Runc} {
		libs, err := sharedLibs(bin)
		if err != nil {
			return err
		}
		for _, l := range libs {
			files[l] = l
		}
	}
	for _, d := range []string{"/bin", "/usr/bin", "/usr/local/bin", "/usr/sbin", "/sbin", "/etc", "/tmp", "/run", "/var/lib/buildkit", "/proc", "/sys", "/dev", "/lib", "/lib64", "/usr/lib"} {
		if err := tw.dir(d); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(files))
	for dst := range files {
		names = append(names, dst)
	}
	sort.Strings(names)
	for _, dst := range names {
		if err := addFile(tw, dst, files[dst]); err != nil {
			return err
		}
	}
	for _, applet := range []string{"sh", "mount", "umount", "mkdir", "cat", "sleep", "test", "ls", "rm", "echo", "grep", "ps", "kill", "tail", "head", "cp", "mv", "ln", "env", "find", "xargs", "awk", "sed", "tr", "cut"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777}); err != nil {
			return err
		}
	}
	return tw.Close()
}

func addFile(tw *tarWriter, dst, src string) error {
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		return err
	}
	fh, err := os.Open(real)
	if err != nil {
		return err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return err
	}
	if err := tw.dir(filepath.Dir(dst)); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(dst, "/"), Mode: int64(st.Mode().Perm() | 0o555), Size: st.Size()}); err != nil {
		return err
	}
	_, err = io.Copy(tw, fh)
	return err
}

// sharedLibs are the libraries a program needs, transitively, and its
// dynamic linker, as paths on this machine (none for a static program).
func sharedLibs(bin string) ([]string, error) {
	seen := map[string]bool{}
	var walk func(string) error
	walk = func(p string) error {
		ef, err := elf.Open(p)
		if err != nil {
			return fmt.Errorf("docker image: %s: %w", p, err)
		}
		defer ef.Close()
		if interp := ef.Progs; interp != nil {
			for _, prog := range ef.Progs {
				if prog.Type == elf.PT_INTERP {
					b, _ := io.ReadAll(prog.Open())
					seen[strings.TrimRight(string(b), "\x00")] = true
				}
			}
		}
		needed, err := ef.DynString(elf.DT_NEEDED)
		if err != nil {
			return nil // static
		}
		for _, lib := range needed {
			path := findLib(lib)
			if path == "" {
				return fmt.Errorf("docker image: %s needs %s, not found in %v", p, lib, libDirs)
			}
			if !seen[path] {
				seen[path] = true
				if err := walk(path); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(bin); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

func findLib(name string) string {
	for _, d := range libDirs {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
