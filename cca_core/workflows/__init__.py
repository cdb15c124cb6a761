"""Workflows: graphs of named tasks with dependencies, and coordinated tasks run as one."""
