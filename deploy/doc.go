// Package deploy holds no code: its test checks the deployment files in this
// directory (the Dockerfile, the compose file, the Kubernetes manifests)
// against the binary they run. It is a module of its own so that the
// parsers it needs (BuildKit's, the Kubernetes API types) stay out of
// Rosetta's own dependencies; go.work includes it, so `go test ./...` from
// the repository's root runs it.
package deploy
