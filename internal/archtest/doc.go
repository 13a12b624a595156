// Package archtest holds the test that keeps docs/architecture.md a true map: every package of the module has a
// row there, every row says what its package must not do, and what can be checked of those rules from the
// import graph (`go list`) is checked. It has no code of its own and must not be imported.
package archtest
