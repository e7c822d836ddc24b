"""The graph's nodes: thin functions that read state, call domain code, and return updates."""
