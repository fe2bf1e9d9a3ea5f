"""API plumbing every app shares: the error envelope, pagination, token authentication and
throttles."""
