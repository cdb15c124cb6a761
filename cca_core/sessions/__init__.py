"""Sessions are data: each task's claude transcript and workspace, stored centrally so any
worker can resume a run and any finished task can be continued."""
