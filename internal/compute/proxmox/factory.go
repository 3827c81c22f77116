package proxmox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/sizing"
)

// Option names (compute.Config.Options).
const (
	OptEndpoint = "proxmox-endpoint"
	OptToken    = "proxmox-token"
	OptNode     = "proxmox-node"
	OptTemplate = "proxmox-template"
	// OptArmTemplate and OptArmNode are the template (and its node) of arm64
	// builds: a multi-platform build's arm64 leg clones it.
	OptArmTemplate = "proxmox-arm-template"
	OptArmNode     = "proxmox-arm-node"
	OptFull        = "proxmox-full-clone"
	OptCAFile      = "proxmox-ca-file"
	// OptInsecureHTTP allows an http:// endpoint (the token then crosses
	// the network in clear).
	OptInsecureHTTP = "proxmox-insecure-http"
)

type factory struct{}

func init() { compute.Register(factory{}) }

func (factory) Name() string        { return "proxmox" }
func (factory) Tiers() sizing.Table { return sizing.HCloud }
func (factory) Options() []string {
	return []string{OptEndpoint, OptToken, OptNode, OptTemplate, OptArmTemplate, OptArmNode, OptFull, OptCAFile, OptInsecureHTTP}
}

// Features: a Stats reading is an SSH round trip; templates are x86.
func (factory) Features() compute.Features {
	return compute.Features{SampleEvery: time.Second, Archs: []string{"x86"}}
}

func (factory) Settings() []compute.Setting {
	return []compute.Setting{
		{Name: OptEndpoint, Env: "PROXMOX_ENDPOINT", Help: "compute-provider proxmox: the API URL, https://HOST:8006/api2/json"},
		{Name: OptToken, Secret: true, Env: "PROXMOX_TOKEN", Help: "compute-provider proxmox: API token USER@REALM!TOKENID=SECRET (CLI: --proxmox-token-file or $PROXMOX_TOKEN)"},
		{Name: OptNode, Help: "compute-provider proxmox: the node the clones run on"},
		{Name: OptTemplate, Help: "compute-provider proxmox: the template VM's id (cloud-init, guest agent, buildkitd as on Hetzner); builds clone the newest runner template made from it (runners image --provider proxmox), else it"},
		{Name: OptArmTemplate, Help: "compute-provider proxmox: the arm64 template VM's id, for linux/arm64 builds (a multi-platform build's arm64 leg)"},
		{Name: OptArmNode, Help: "compute-provider proxmox: the node of the arm64 template (default proxmox-node)"},
		{Name: OptFull, Help: "compute-provider proxmox: true for full clones (default linked)"},
		{Name: OptInsecureHTTP, Bool: true, Help: "compute-provider proxmox: allow an http:// endpoint (the API token crosses the network in clear)"},
		{Name: OptCAFile, Machine: true, Help: "compute-provider proxmox: CA certificate of the API (PEM), for a self-signed one"},
	}
}

func (factory) New(cfg compute.Config) (compute.Provider, error) {
	s := Settings{Endpoint: cfg.Options[OptEndpoint], Token: cfg.Options[OptToken], Node: cfg.Options[OptNode], CAFile: cfg.Options[OptCAFile]}
	template := OptTemplate
	if cfg.Arch == "arm" {
		if cfg.Options[OptArmTemplate] == "" {
			return nil, &compute.OptionError{Option: OptArmTemplate, Err: errors.New("linux/arm64 builds clone an arm64 template: give its VM id")}
		}
		template = OptArmTemplate
		if n := cfg.Options[OptArmNode]; n != "" {
			s.Node = n
		}
	}
	if t := cfg.Options[template]; t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n <= 0 {
			return nil, &compute.OptionError{Option: template, Value: t, Err: errors.New("want a VM id")}
		}
		s.Template = n
	}
	var err error
	if s.InsecureHTTP, err = boolOption(cfg, OptInsecureHTTP); err != nil {
		return nil, err
	}
	if s.Full, err = boolOption(cfg, OptFull); err != nil {
		return nil, err
	}
	return New(s)
}

// boolOption reads a true/false option ("" is false).
func boolOption(cfg compute.Config, name string) (bool, error) {
	switch strings.ToLower(cfg.Options[name]) {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, &compute.OptionError{Option: name, Err: errors.New("want true or false")}
}

// vm is one of the provider's VMs, for List and GC.
type vm struct {
	id   int
	node string
	info compute.RunnerInfo
}

// List finds the provider's VMs by tag and reads their labels from their
// descriptions.
func (p *Provider) List(ctx context.Context) ([]compute.RunnerInfo, error) {
	vms, err := p.vms(ctx)
	out := make([]compute.RunnerInfo, 0, len(vms))
	for _, v := range vms {
		out = append(out, v.info)
	}
	return out, err
}

func (p *Provider) vms(ctx context.Context) ([]vm, error) {
	found, err := p.described(ctx, func(v Resource) bool { return v.Template != 1 && hasTag(v.Tags, Tag) })
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []vm
	for _, d := range found {
		v, labels := d.Resource, d.labels
		i := compute.RunnerInfo{ID: labels[compute.LabelLease], Provider: "proxmox", Tier: labels[compute.LabelTier],
			Server: fmt.Sprintf("VM %d (%s, %s)", v.VMID, v.Name, v.Status), Location: v.Node, Owner: labels[compute.LabelOwner]}
		i.Expires, _ = compute.ParseExpires(labels[compute.LabelExpires])
		i.Orphan, i.Why = compute.Orphaned(labels, now)
		if i.ID == "" {
			i.ID = strconv.Itoa(v.VMID)
		}
		out = append(out, vm{id: v.VMID, node: v.Node, info: i})
	}
	return out, nil
}

// describedVM is a VM of the cluster with the labels of its description.
type describedVM struct {
	Resource
	labels map[string]string
}

// described lists the cluster's VMs that keep says to, with the labels
// their descriptions hold (a VM deleted meanwhile is left out).
func (p *Provider) described(ctx context.Context, keep func(Resource) bool) ([]describedVM, error) {
	var res []Resource
	if err := p.api.do(ctx, http.MethodGet, "/cluster/resources", map[string][]string{"type": {"vm"}}, &res); err != nil {
		return nil, err
	}
	var out []describedVM
	for _, v := range res {
		if !keep(v) {
			continue
		}
		var cfg struct {
			Description string `json:"description"`
		}
		if err := p.api.do(ctx, http.MethodGet, fmt.Sprintf("/nodes/%s/qemu/%d/config", v.Node, v.VMID), nil, &cfg); err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, err
		}
		out = append(out, describedVM{v, labelsOf(cfg.Description)})
	}
	return out, nil
}

// hasTag reports whether a VM's tags (separated by ';', ',' or spaces) hold tag.
func hasTag(tags, tag string) bool {
	for _, t := range strings.FieldsFunc(tags, func(r rune) bool { return r == ';' || r == ',' || r == ' ' }) {
		if t == tag {
			return true
		}
	}
	return false
}

// GC deletes the orphaned VMs; every failure is returned.
func (p *Provider) GC(ctx context.Context) ([]compute.RunnerInfo, error) {
	vms, err := p.vms(ctx)
	if err != nil {
		return nil, err
	}
	var removed []compute.RunnerInfo
	var errs []error
	for _, v := range vms {
		if !v.info.Orphan {
			continue
		}
		if err := p.deleteVM(ctx, v.node, v.id); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, v.info)
	}
	return removed, errors.Join(errs...)
}
