"""Settings: one typed model layered from flags, environment and file, plus the settings of
the features that have no package of their own (grants, receipts, TLS)."""
