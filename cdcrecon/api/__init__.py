"""API plumbing every app shares: the error envelope, pagination and authentication."""
