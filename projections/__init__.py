"""The read side: read-model tables, projectors, the runner, and the queries the API calls."""
