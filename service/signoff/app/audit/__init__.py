"""The audit desk: queries, export, verify, signed checkpoints, the rows checked against the
chain, and the summaries of refused calls."""
