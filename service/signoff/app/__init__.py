"""Use cases, one desk per concern: decisions, reviews, grants, audit, receipts, insights,
replay. Knows the store and the pure core; knows nothing of gRPC."""
