"""Policy analysis with an SMT solver (z3): rule findings and invariants (`policy analyze`)."""
