"""The `signoff` command line."""

import os
import sys

if "serve" not in sys.argv[1:2]:
    # gRPC's C core logs a failed TLS handshake at INFO on stderr, above the one-line error a
    # remote command prints anyway; it reads the level once, at import, so it is set here.
    # The server keeps gRPC's default: there the lines tell operators why a client was refused.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
