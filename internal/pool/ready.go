package pool

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"

	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/compute/sshx"
	"github.com/lian-build/action/internal/pool/poolapi"
)

// A returned VM is made ready for the lease that will likely follow (ADR
// 0016): its recycle starts buildkitd on a copy of the namespace the last
// lease wrote (or on an empty root after a lease without state) and lets
// the next lease's key in. A lease that wants exactly that takes the VM
// with a compare-and-set and no SSH; any other gets the SSH grant, which
// restarts buildkitd on what it asked for and replaces the key.

// keySecret is the pool key's signature of a fixed message, hashed: every
// replica holding the pool's key computes the same, as ed25519 (and RSA
// PKCS #1 v1.5) signatures are deterministic. nil when two signatures
// differ (ECDSA): leases are then granted over SSH.
func keySecret(signer ssh.Signer) []byte {
	msg := []byte("lian-build pool: the keys of prepared leases, v1")
	a, err1 := signer.Sign(rand.Reader, msg)
	b, err2 := signer.Sign(rand.Reader, msg)
	if err1 != nil || err2 != nil || !bytes.Equal(a.Blob, b.Blob) {
		return nil
	}
	sum := sha256.Sum256(a.Blob)
	return sum[:]
}

// preparedKey is the key a recycle let in for VM vm's next lease, from
// the nonce its entry records: the key itself is stored nowhere.
func (s *Service) preparedKey(vm, nonce string) ed25519.PrivateKey {
	mac := hmac.New(sha256.New, s.keySecret)
	mac.Write([]byte(vm + "\x00" + nonce))
	return ed25519.NewKeyFromSeed(mac.Sum(nil))
}

// readyNamespace is the namespace a VM returned by the ended lease is
// made ready for: the one it wrote when the VM now holds it, else the one
// it started from ("": an empty tree).
func readyNamespace(v VM, ended LeaseState) string {
	if _, ok := v.Warm[ended.Write]; ok && ended.Write != "" {
		return ended.Write
	}
	if _, ok := v.Warm[ended.Opened]; ok {
		return ended.Opened
	}
	return ""
}

// adoptable says whether lease can take v as its recycle made it ready:
// its buildkitd already runs on what the SSH grant would start it on — an
// empty root for a lease that asks for no state; for one that does, a copy
// of the generation v holds of the first namespace of its read set, or an
// empty tree when v holds none of them.
func adoptable(v VM, lease Lease) bool {
	r := v.Ready
	switch {
	case r == nil:
		return false
	case lease.State == nil:
		return r.Tree == ""
	case r.Tree == "":
		return false
	}
	ns := heldNamespace(v, lease.State.Read)
	return r.Namespace == ns && (ns == "" || v.Warm[ns].Generation == r.Generation)
}

// makeReady recycles v for the lease likely to follow the one that ended
// (nil: none did, a new standby) and records in v what it made ready.
func (s *Service) makeReady(ctx context.Context, v *VM, ended *Lease) (string, error) {
	r, o := Ready{}, remote.RecycleOptions{}
	if ended != nil && ended.State != nil {
		r.Namespace, r.Tree = readyNamespace(*v, *ended.State), "r-"+randomHex(6)
		o.Tree = r.Tree
		if r.Namespace != "" {
			o.Open = poolapi.WarmDir(r.Namespace)
		}
	}
	if s.keySecret != nil {
		r.KeyNonce = randomHex(16)
		o.Next = pubOf(s.preparedKey(v.ID, r.KeyNonce))
	}
	v.Ready = nil
	start := s.o.Now()
	var g remote.Generation
	hk, err := s.onMachine(ctx, *v, func(c *sshx.Conn) (err error) {
		g, err = remote.Recycle(ctx, c, s.o.Signer.PublicKey(), o)
		return err
	})
	if err != nil {
		return "", err
	}
	if r.Tree != "" {
		r.OpenMS = s.o.Now().Sub(start).Milliseconds()
		r.Generation, r.Bytes = g.N, g.Bytes
		if g.N == 0 {
			r.Namespace = ""
		}
	}
	v.Ready = &r
	return hk, nil
}

// adopt takes v for its lease as its recycle made it ready: with the key
// the recycle let in (no SSH), or, when the pool's key derives none, a
// grant of key to the running buildkitd. It returns what that buildkitd
// runs on.
func (s *Service) adopt(ctx context.Context, v VM, r Ready, key ssh.PublicKey, vms []VM) (*GrantState, error) {
	if r.KeyNonce == "" {
		if _, err := s.onMachine(ctx, v, func(c *sshx.Conn) error {
			return remote.Grant(ctx, c, s.o.Signer.PublicKey(), key, r.Tree)
		}); err != nil {
			return nil, err
		}
	}
	if v.Lease.State == nil {
		return nil, nil
	}
	v.Lease.State.Tree = r.Tree
	return s.opened(v, vms, GrantState{Namespace: r.Namespace, Generation: r.Generation, Bytes: r.Bytes, OpenMS: r.OpenMS, Prepared: true}), nil
}
