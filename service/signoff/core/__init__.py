"""The pure core: decision semantics, the review state machine, grant scope, the audit chain
encoding, checkpoint signatures, redaction, validation, explanation. No store, no gRPC."""
