"""The gRPC layer: thin servicers that convert, call `app`, and map errors."""
