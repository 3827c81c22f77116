package cli

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/sizing"
)

// providerFlags configure the compute provider (only local for now).
type providerFlags struct {
	provider   string
	stateDir   string
	buildkitd  string
	tierMemory string
	insecure   listFlag
}

func (p *providerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.provider, "provider", "local", "compute provider: local")
	fs.StringVar(&p.stateDir, "state-dir", envOr("LIAN_STATE_DIR", local.DefaultStateDir), "local provider: runner state directory ($LIAN_STATE_DIR)")
	fs.StringVar(&p.buildkitd, "buildkitd", envOr("LIAN_BUILDKITD", defaultBuildkitd()), "local provider: buildkitd binary ($LIAN_BUILDKITD)")
	fs.StringVar(&p.tierMemory, "local-tier-memory", envOr("LIAN_LOCAL_TIER_MEMORY", ""), "local provider: memory per tier, e.g. cax11=256MiB,cax21=512MiB ($LIAN_LOCAL_TIER_MEMORY)")
	fs.Var(&p.insecure, "insecure-registry", "HOST:PORT of a plain-HTTP registry (repeatable)")
}

func (p *providerFlags) open() (*local.Provider, error) {
	if p.provider != "local" {
		return nil, usageErr("--provider %q: only local is available in this build", p.provider)
	}
	mem, err := local.ParseTierMemory(p.tierMemory, sizing.HCloud)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return local.New(local.Options{
		Buildkitd:          p.buildkitd,
		StateDir:           p.stateDir,
		TierMemory:         mem,
		InsecureRegistries: p.insecure,
		Table:              sizing.HCloud,
	})
}

// defaultBuildkitd is buildkitd on PATH, else the one installed next to lian-build.
func defaultBuildkitd() string {
	if _, err := exec.LookPath("buildkitd"); err == nil {
		return "buildkitd"
	}
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "buildkitd"); fileExists(p) {
			return p
		}
	}
	return "buildkitd"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
