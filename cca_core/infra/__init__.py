"""Infrastructure: configuration, the database, embedded servers, logging, redaction, the HTTP client."""
