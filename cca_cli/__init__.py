"""The `cca` command line: talks to the API over HTTP, and starts fleet processes."""
