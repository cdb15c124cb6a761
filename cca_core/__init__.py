"""cca core: configuration, models, the store and the API client.

Imports neither flask nor celery; importing it opens no connection.
"""

__version__ = "0.1.0"
