// Package remote is what every runner reached over SSH shares, whoever
// made the machine (a Hetzner server per lease, a pool VM leased again):
// the machine's layout — buildkitd on a unix socket in the build cgroup,
// written by CloudInit — the counters read from that cgroup (StatsCommand),
// the recycle and grant scripts that make a machine fit for its next lease,
// and Conn, the runner methods (client, stats, health) over one SSH
// connection.
package remote
