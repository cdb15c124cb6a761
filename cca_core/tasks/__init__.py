"""Tasks: their request shapes, the SQL of every status change, submission and dispatch."""
