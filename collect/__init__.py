"""Collection: every closed file of a session leaves the edge for an S3-compatible archive."""
