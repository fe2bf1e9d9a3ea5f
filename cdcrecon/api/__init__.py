"""The API plumbing shared by both apps: token authentication and throttles."""
