"""The fleet as a whole: workers and queues read from Redis, and its Prometheus metrics."""
