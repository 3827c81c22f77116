package vmhost

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// Agent speaks the QEMU guest agent's protocol (JSON commands over the
// VM's virtio-serial port, a unix socket here): what Proxmox asks for a
// VM's addresses, and how the test world runs a command in a guest
// without a key of its own on it.
type Agent struct {
	Socket string
}

type agentReply struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
}

// call sends one command on a new connection; guest-sync first, so a
// reply left over from an earlier, abandoned command is not taken for this
// one's.
func (a Agent) call(ctx context.Context, cmd string, args any, out any) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", a.Socket)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	_ = c.SetDeadline(deadline)
	r := bufio.NewReader(c)
	id := time.Now().UnixNano() & 0x7fffffff
	if err := send(c, "guest-sync", map[string]any{"id": id}); err != nil {
		return err
	}
	for {
		var rep agentReply
		line, err := r.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("guest agent: %w", err)
		}
		if json.Unmarshal(line, &rep) == nil && string(rep.Return) == fmt.Sprint(id) {
			break
		}
	}
	if err := send(c, cmd, args); err != nil {
		return err
	}
	line, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("guest agent %s: %w", cmd, err)
	}
	var rep agentReply
	if err := json.Unmarshal(line, &rep); err != nil {
		return fmt.Errorf("guest agent %s: %w", cmd, err)
	}
	if rep.Error != nil {
		return fmt.Errorf("guest agent %s: %s: %s", cmd, rep.Error.Class, rep.Error.Desc)
	}
	if out != nil {
		return json.Unmarshal(rep.Return, out)
	}
	return nil
}

func send(c net.Conn, cmd string, args any) error {
	m := map[string]any{"execute": cmd}
	if args != nil {
		m["arguments"] = args
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = c.Write(append(b, '\n'))
	return err
}

// Ping answers when the agent runs in the guest.
func (a Agent) Ping(ctx context.Context) error { return a.call(ctx, "guest-ping", nil, nil) }

// Exec runs a shell script in the guest as root and returns its output
// (stdout, then stderr) once it exits; a non-zero exit is an error.
func (a Agent) Exec(ctx context.Context, script string) ([]byte, error) {
	var started struct {
		PID int `json:"pid"`
	}
	if err := a.call(ctx, "guest-exec", map[string]any{"path": "/bin/sh", "arg": []string{"-c", script}, "capture-output": true}, &started); err != nil {
		return nil, err
	}
	for {
		var st struct {
			Exited   bool   `json:"exited"`
			ExitCode int    `json:"exitcode"`
			Signal   int    `json:"signal"`
			Out      string `json:"out-data"`
			Err      string `json:"err-data"`
		}
		if err := a.call(ctx, "guest-exec-status", map[string]any{"pid": started.PID}, &st); err != nil {
			return nil, err
		}
		if st.Exited {
			o, _ := base64.StdEncoding.DecodeString(st.Out)
			e, _ := base64.StdEncoding.DecodeString(st.Err)
			out := append(o, e...)
			switch {
			case st.Signal != 0:
				return out, fmt.Errorf("killed by signal %d", st.Signal)
			case st.ExitCode != 0:
				return out, fmt.Errorf("exit status %d", st.ExitCode)
			}
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(errors.New("guest agent: the command did not finish"), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Addresses are the guest's IPv4 addresses by interface, as Proxmox's
// agent/network-get-interfaces reports them.
func (a Agent) Addresses(ctx context.Context) (map[string][]string, error) {
	var ifs []struct {
		Name string `json:"name"`
		IPs  []struct {
			Type    string `json:"ip-address-type"`
			Address string `json:"ip-address"`
		} `json:"ip-addresses"`
	}
	if err := a.call(ctx, "guest-network-get-interfaces", nil, &ifs); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, i := range ifs {
		for _, ip := range i.IPs {
			if ip.Type == "ipv4" {
				out[i.Name] = append(out[i.Name], ip.Address)
			}
		}
	}
	return out, nil
}
