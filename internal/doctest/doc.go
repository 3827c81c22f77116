// Package doctest runs the README's marked command blocks (`<!-- doctest -->`
// before a ```sh block) against the local world, in order, in one shell, and
// checks what each block must print, so that the README cannot drift from
// what the binaries do. It holds tests only.
package doctest
