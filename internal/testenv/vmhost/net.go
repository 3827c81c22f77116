package vmhost

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/lian-build/action/internal/testenv/netns"
)

// Addresses every VM's network shows the same way, as Hetzner's does: the
// metadata service, and the gateway's address where the test world's
// services (a registry, the runner downloads) answer.
const (
	MetadataIP = "169.254.169.254"
	ServicesIP = "172.31.1.1" // Hetzner's gateway address, on every server
)

// vmNet is a VM's network: a namespace of its own holding the VM's tap,
// which routes between the VM (GuestIP, the server's address) and this
// machine over a veth pair. The namespace is the VM's gateway, its DHCP
// server and its metadata service.
type vmNet struct {
	ns, tap, veth string
	gateway       string // on the tap
	GuestIP       string
	hostIP, nsIP  string // the veth pair's ends
	MAC           net.HardwareAddr
}

// newVMNet lays out the network of server id for process tag t: the VM
// at 10.(160+t%64).(id%250).2/30, its gateway .1, the veth pair .5/.6.
func newVMNet(t int, id int64) *vmNet {
	a, b := 160+t%64, id%250
	p := fmt.Sprintf("10.%d.%d.", a, b)
	return &vmNet{
		ns: fmt.Sprintf("%s%d", Prefix(), id), tap: "tap0", veth: fmt.Sprintf("v%04x%d", t, id%10000),
		gateway: p + "1", GuestIP: p + "2", hostIP: p + "5", nsIP: p + "6",
		MAC: net.HardwareAddr{0x96, 0x00, byte(t >> 8), byte(t), byte(id >> 8), byte(id)},
	}
}

func (n *vmNet) up(ctx context.Context) error {
	for _, args := range [][]string{
		{"netns", "add", n.ns},
		{"link", "add", n.veth + "a", "type", "veth", "peer", "name", n.veth + "b"},
		{"link", "set", n.veth + "b", "netns", n.ns},
		{"addr", "add", n.hostIP + "/30", "dev", n.veth + "a"},
		{"link", "set", n.veth + "a", "up"},
		{"route", "add", n.GuestIP + "/32", "via", n.nsIP},
		{"-n", n.ns, "addr", "add", n.nsIP + "/30", "dev", n.veth + "b"},
		{"-n", n.ns, "link", "set", n.veth + "b", "up"},
		{"-n", n.ns, "link", "set", "lo", "up"},
		{"-n", n.ns, "route", "add", "default", "via", n.hostIP},
		{"-n", n.ns, "tuntap", "add", n.tap, "mode", "tap"},
		{"-n", n.ns, "addr", "add", n.gateway + "/30", "dev", n.tap},
		{"-n", n.ns, "addr", "add", MetadataIP + "/32", "dev", n.tap},
		{"-n", n.ns, "addr", "add", ServicesIP + "/32", "dev", n.tap},
		{"-n", n.ns, "link", "set", n.tap, "up"},
	} {
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return netns.Do(n.ns, func() error {
		return writeSysctl("/proc/sys/net/ipv4/ip_forward", "1")
	})
}

// down removes the namespace (the tap and the veth pair go with it).
func (n *vmNet) down() error {
	out, err := exec.Command("ip", "netns", "del", n.ns).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "No such file") {
		return fmt.Errorf("ip netns del %s: %v: %s", n.ns, err, out)
	}
	return nil
}

// dhcp answers the VM's DHCP requests on the tap: its address, the
// gateway as router, a day's lease; nothing for any other MAC.
func (n *vmNet) dhcp() (*server4.Server, error) {
	var srv *server4.Server
	err := netns.Do(n.ns, func() (err error) {
		srv, err = server4.NewServer(n.tap, &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, n.answer)
		return err
	})
	return srv, err
}

func (n *vmNet) answer(conn net.PacketConn, _ net.Addr, m *dhcpv4.DHCPv4) {
	if m.OpCode != dhcpv4.OpcodeBootRequest || m.ClientHWAddr.String() != n.MAC.String() {
		return
	}
	var kind dhcpv4.MessageType
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		kind = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		kind = dhcpv4.MessageTypeAck
	default:
		return
	}
	gw := net.ParseIP(n.gateway).To4()
	reply, err := dhcpv4.NewReplyFromRequest(m,
		dhcpv4.WithMessageType(kind),
		dhcpv4.WithYourIP(net.ParseIP(n.GuestIP)),
		dhcpv4.WithServerIP(gw),
		dhcpv4.WithNetmask(net.CIDRMask(30, 32)),
		dhcpv4.WithRouter(gw),
		dhcpv4.WithLeaseTime(86400),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(gw)),
	)
	if err != nil {
		return
	}
	_, _ = conn.WriteTo(reply.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort})
}

// writeSysctl sets a sysctl of the calling thread's network namespace.
func writeSysctl(path, value string) error { return os.WriteFile(path, []byte(value), 0o644) }
