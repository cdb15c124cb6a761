"""Turn API failures into sentences Claude can act on (returned as ``isError`` results)."""

from __future__ import annotations

from cca_core.infra.api_client import ApiError


def explain(error: ApiError, base_url: str) -> str:
    """One actionable sentence for an API failure."""
    if error.code == "unreachable":
        return (f"the cca API at {base_url} is not reachable: start it with `cca up` (or point "
                "cca-mcp at the right --daemon-url)")
    if error.status == 401:
        return (f"the cca API at {base_url} refused the request ({error.message}): set CCA_API_KEY "
                "or pass --api-key to cca-mcp")
    if error.status == 403:
        return f"this API key may not do that: {error.message}"
    if error.status == 404:
        return f"{error.message}: check the task id (cca_tasks lists recent tasks)"
    if error.status == 429:
        return f"the fleet refused the task for now ({error.code}): {error.message}; try again later"
    if error.status in (400, 409, 413, 415, 422):
        field = f" (field {error.field})" if error.field else ""
        return f"the cca API rejected the request{field}: {error.message}"
    return f"the cca API failed ({error.status} {error.code}): {error.message}"
