"""Tokens: what runs spend, counted as they stream (:mod:`.usage`, pure), and what the record
says about it (:mod:`.analytics`: per-turn context, cache hits, tool output, cost by model,
and findings)."""
