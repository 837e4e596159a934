"""The graph's nodes, one per module: each is `async (state, runtime) -> partial update`."""
