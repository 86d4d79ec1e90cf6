"""ML5xx: evaluation passes."""
