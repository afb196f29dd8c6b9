// Package benchcmp holds the comparative benchmarks of jobq against a
// hand-written channel worker pool (the floor) and the worker pools users
// usually reach for instead: ants, pond, conc, errgroup and workerpool.
//
// It is a module of its own so that those peers never become dependencies of
// jobq itself. There is no code here beyond the benchmarks in bench_test.go;
// see README.md for how to run and compare them.
package benchcmp
