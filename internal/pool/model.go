package pool

import "github.com/lian-build/action/internal/pool/poolapi"

// The pool's wire model lives in poolapi (what its clients need); the
// service uses it under these names.
type (
	State        = poolapi.State
	VM           = poolapi.VM
	Lease        = poolapi.Lease
	Request      = poolapi.Request
	RequestError = poolapi.RequestError
	Grant        = poolapi.Grant
	Return       = poolapi.Return
	Renewal      = poolapi.Renewal
	Renewed      = poolapi.Renewed
	Warm         = poolapi.Warm
	Ready        = poolapi.Ready
	StateRequest = poolapi.StateRequest
	GrantState   = poolapi.GrantState
	LeaseState   = poolapi.LeaseState
	Disposition  = poolapi.Disposition
	Status       = poolapi.Status
	Client       = poolapi.Client
	APIError     = poolapi.APIError
	TimeoutError = poolapi.TimeoutError
	Timeouts     = poolapi.Timeouts
)

// The VM states, the actor classes and the bounds of a lease.
const (
	StateCreating  = poolapi.StateCreating
	StateIdle      = poolapi.StateIdle
	StateLeased    = poolapi.StateLeased
	StateRecycling = poolapi.StateRecycling
	StateRetiring  = poolapi.StateRetiring
	MaxTTL         = poolapi.MaxTTL
	MaxExpected    = poolapi.MaxExpected
	PathLeases     = poolapi.PathLeases
	PathDrain      = poolapi.PathDrain
	PathResume     = poolapi.PathResume
)

var (
	// Classes are the actor classes a request may name.
	Classes = poolapi.Classes
	// CheckToken and CheckURL check a bearer token and a pool's URL.
	CheckToken = poolapi.CheckToken
	CheckURL   = poolapi.CheckURL
	quote      = poolapi.Quote
)
