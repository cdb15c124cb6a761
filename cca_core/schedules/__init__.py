"""Schedules: cron timing, catch-up, the schedule store and firing."""
