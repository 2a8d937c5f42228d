"""Running the command line's work on Ray: a session (local or a cluster) and what runs on it."""
