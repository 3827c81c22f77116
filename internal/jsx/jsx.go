// Package jsx holds the JetStream conventions every lian-build stream and
// bucket follows.
package jsx

import "github.com/nats-io/nats.go"

// Replicas is how many copies JetStream keeps of a stream or bucket: 3 on a
// cluster of at least three servers (one may fail, a majority remains), 1
// on a single server.
func Replicas(nc *nats.Conn) int {
	if nc != nil && len(nc.Servers()) >= 3 {
		return 3
	}
	return 1
}
