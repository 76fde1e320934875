"""Small helpers for answering HTMX and plain requests from the same view."""

from flask import Response, make_response, render_template, request


def is_htmx() -> bool:
    """True for an HTMX swap; a history restore or a boosted link wants the whole page."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
        and request.headers.get("HX-Boosted") != "true"
    )


def render(template: str, fragment: str, status: int = 200, **context) -> Response:
    """Render the full page, or only its fragment for HTMX, and say so in Vary."""
    chosen = fragment if is_htmx() else template
    response = make_response(render_template(chosen, **context), status)
    response.vary.add("HX-Request")
    return response
