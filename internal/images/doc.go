// Package images holds the tests that build the shipped container images
// (Dockerfile, plugin/woodpecker/Dockerfile) with lian-build itself.
package images
