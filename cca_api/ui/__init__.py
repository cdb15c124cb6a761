"""The web dashboard at ``/ui``: server-rendered pages with a little JavaScript.

``session`` signs a key in; ``pages`` render what the API shows (tasks, a task's live
timeline, workflows, workers, queues, schedules, keys, plots); ``actions`` are the forms that
change something (submit, cancel, pause, resume, run now, sign out), each checking the
session's CSRF token; ``live`` streams status and events to the open pages. Charts are drawn
by Chart.js, vendored in ``static/vendor`` (no CDN at run time)."""

from cca_api.ui.views import bp

__all__ = ["bp"]
