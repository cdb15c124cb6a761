"""Who may do what: managed API keys, their limits and quotas, task tokens, safe defaults."""
