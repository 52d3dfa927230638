"""Wiring and serving: the server, worker processes, the HTTP port, the policy watcher, TLS,
the signing key's files and `signoff doctor`."""
