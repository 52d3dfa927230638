"""OpenTelemetry for Signoff: spans, metrics, the hot path's histograms, bounded labels and
the providers."""
