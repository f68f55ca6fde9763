"""The encrypted store: age v1 files (X25519 recipients, STREAM payload) written as they grow."""
