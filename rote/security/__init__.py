"""Security primitives shared by rote's components (signed test verdicts)."""
