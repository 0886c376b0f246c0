"""The 2015 tutorial's server, rebuilt from its description, as the baseline to beat.

Why it exists: the project's targets are stated as multiples of "what the tutorial gave you".
This file reproduces the tutorial's *behaviour* (Part 2's page and form toggle, Part 3's JSON
API) on the tutorial's stack (Bottle's default server, i.e. the stdlib ``wsgiref`` server with
its per-request stderr log line and listen backlog of 5), so the comparison measures the same
work the tutorial's users got. It was written here from the series' description
(``/work/shared/seed``), not copied. Deliberate differences, all of them about the absence of
hardware on the bench machine or about binding:

* RPi.GPIO is replaced by a no-op ``_gpio_output`` (a GPIO write is microseconds on a Pi and
  the tutorial never reads pins back; state lives in the ``current_values`` dict as it did).
* It listens on ``127.0.0.1:<port>`` given on the command line instead of ``0.0.0.0:8080``.
* Python 3: ``io.StringIO`` and ``dict.items()`` instead of ``StringIO`` and ``iteritems()``.

Everything the tutorial got wrong is kept on purpose, because that is what is measured: the
API's success and error replies are *not* valid JSON (single quotes), an unknown pin on the
page route is a 500, a non-numeric pin on the API is a 500, and the Content-Type check is an
exact string comparison.
"""

from __future__ import annotations

import argparse
import io
import json

from bottle import request, response, route, run, template

# The tutorial's pins: BCM 18, 23 and 24 as outputs starting LOW. The server never reads a pin
# back; this dict *is* the state, exactly as in the tutorial.
current_values: dict[int, bool] = {18: False, 23: False, 24: False}

# The tutorial's ``gpio_template.tpl`` (a bare table; one form per row posting to /toggle).
# Kept inline so the baseline is a single file; Bottle caches the compiled template by source.
PAGE_TEMPLATE = """<table>
<tr>
    <td>Pin Number</td>
    <td>Current Value</td>
    <td></td>
</tr>
% for key, value in current_values.items():
    <form action="/toggle?pin={{key}}" method="post">
    <tr>
        <td>{{key}}</td>
        <td>{{value}}</td>
        <td><input type="submit" value="Toggle"/></td>
    </tr>
    </form>
% end
</table>
"""


def _gpio_output(pin: int, value: bool) -> None:
    """Stand in for ``GPIO.output``: there is no GPIO on the bench machine.

    A real write is a register poke of a few microseconds, small next to the HTTP cost
    measured here, so a no-op keeps the baseline honest rather than flattering it.
    """


def toggle_pin(pin: int) -> str:
    """Flip one pin, as Part 3's ``togglePin``: "Ok", or an error string for an unknown pin."""
    try:
        current_values[pin] = not current_values[pin]
    except KeyError:
        return "Invalid Pin number"
    _gpio_output(pin, current_values[pin])
    return "Ok"


@route("/")
def index() -> str:
    """Part 2's page: the table of pins with their values and a Toggle button each."""
    return template(PAGE_TEMPLATE, current_values=current_values)


@route("/toggle", method="POST")
def toggle() -> str:
    """Part 2's form target: flip ``?pin=N`` and render the page again.

    As in the tutorial, a missing, non-numeric or unknown pin raises and Bottle answers 500.
    """
    pin = int(request.query.pin)
    current_values[pin] = not current_values[pin]
    _gpio_output(pin, current_values[pin])
    return template(PAGE_TEMPLATE, current_values=current_values)


@route("/api/list")
def api_list() -> str:
    """Part 3's list: the state dict as JSON, only for ``Content-Type: application/json``."""
    if request.environ["CONTENT_TYPE"] == "application/json":
        out = io.StringIO()
        json.dump(current_values, out)
        response.content_type = "application/json"
        return out.getvalue()
    response.status = 400
    response.content_type = "application/json"
    return "{'Error': 'Only JSON requests accepted'}"


@route("/api/toggle/<pin>", method="POST")
def api_toggle(pin: str) -> str:
    """Part 3's toggle, with its not-quite-JSON replies and its 500 on a non-numeric pin."""
    if request.environ["CONTENT_TYPE"] == "application/json":
        response.content_type = "application/json"
        if toggle_pin(int(pin)) == "Ok":
            return "{'Success': true}"
        response.status = 400
        return "{'Error': 'Invalid Pin Number'}"
    response.status = 400
    response.content_type = "application/json"
    return "{'Error': 'Only JSON requests accepted'}"


def main(argv: list[str] | None = None) -> None:
    """Serve on Bottle's default server (wsgiref), as ``run(host=..., port=...)`` did."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    # No server=, no quiet=: the tutorial used the defaults, so each request is logged to
    # stderr by wsgiref and connections are not kept alive (HTTP/1.0 handler).
    run(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
