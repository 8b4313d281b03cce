"""schemathesis hooks for evault's NDJSON stream (loaded by .ci/schemathesis.sh
through SCHEMATHESIS_HOOKS).

The OpenAPI document describes one line of `application/x-ndjson`: the
request body schema is one record line, the response schema one reply line.
schemathesis knows neither media type, so these hooks send a generated line
as a one-line stream, and check every reply line against the reply-line
schema (schemathesis itself then checks the last one, the summary).
"""

import json
import os

import jsonschema_rs
import schemathesis

_DOC = None


def _line_validator():
    global _DOC
    if _DOC is None:
        with open(os.environ["EVAULT_OPENAPI_JSON"]) as f:
            _DOC = json.load(f)
    schema = {
        "$ref": "#/components/schemas/StreamReplyLine",
        "components": _DOC["components"],
    }
    return jsonschema_rs.Draft202012Validator(schema)


@schemathesis.serializer("application/x-ndjson")
def ndjson_request(ctx, value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return (json.dumps(value) + "\n").encode("utf-8")


@schemathesis.deserializer("application/x-ndjson")
def ndjson_response(ctx, response):
    lines = [l for l in response.content.split(b"\n") if l.strip()]
    if not lines:
        raise ValueError("empty NDJSON reply: at least the summary line is expected")
    validator = _line_validator()
    parsed = []
    for n, raw in enumerate(lines, 1):
        try:
            line = json.loads(raw)
        except ValueError as e:
            raise ValueError(f"reply line {n} is not JSON: {e}") from None
        errors = [e.message for e in validator.iter_errors(line)]
        if errors:
            raise ValueError(f"reply line {n} does not match StreamReplyLine: {errors[0]}")
        parsed.append(line)
    return parsed[-1]
