package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/lian-build/action/internal/githubapp"
)

// Fetch checks out owner/repo at sha into dir, with git over HTTP(S) from
// gitURL. The installation token goes in an HTTP header through git's
// environment configuration: never in a URL, an argument or a log line.
func Fetch(ctx context.Context, gitURL, owner, repo, sha, token, dir string) error {
	for _, err := range []error{githubapp.ValidOwner("owner", owner), githubapp.ValidRepo("repository", repo), githubapp.ValidSHA("sha", sha)} {
		if err != nil {
			return err
		}
	}
	url := strings.TrimSuffix(gitURL, "/") + "/" + owner + "/" + repo + ".git"
	env := append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/true")
	var secrets []string
	if token != "" {
		auth := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + token))
		env = append(env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader", "GIT_CONFIG_VALUE_0=Authorization: Basic "+auth)
		secrets = []string{token, auth}
	}
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir, cmd.Env = dir, env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(mask(out.String(), secrets)))
		}
		return nil
	}
	if err := run("init", "-q"); err != nil {
		return err
	}
	if err := run("fetch", "-q", "--depth", "1", "--", url, sha); err != nil {
		return fmt.Errorf("fetching %s/%s at %s: %w", owner, repo, sha, err)
	}
	return run("-c", "advice.detachedHead=false", "checkout", "-q", "FETCH_HEAD")
}

// mask replaces each (non-empty) secret in s with ***.
func mask(s string, secrets []string) string {
	for _, v := range secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, "***")
		}
	}
	return s
}
