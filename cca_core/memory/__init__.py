"""Memory: what the fleet learned from its tasks, searched by meaning and by words, scoped to
a tenant (cca_core.search does the searching)."""
