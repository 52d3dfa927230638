"""Standing approvals as use cases, and their short-lived cache."""
