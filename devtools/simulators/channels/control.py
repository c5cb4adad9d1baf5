"""`/_sim/...` JSON control endpoints, so a separate process (the demo, a benchmark) can drive the simulator.

    GET  /_sim/health                                   clock and order counts
    POST /_sim/advance   {"events": 50, "platform"?}    apply stream events
    POST /_sim/add       {"platform", ...fields}        add_order; times ISO 8601 with offset, money as text
    POST /_sim/raw       {"platform", "order": {...}}   put_raw
    POST /_sim/bulk      {"platform", "count"}          bulk_generate
    POST /_sim/fail      {"platform", "count"?, "kind"?, "delay"?}
    GET  /_sim/statuses?platform=&since=&until=         ids_and_statuses
    GET  /_sim/orders/<platform>/<order_id>             one order's platform JSON
    POST /_sim/webhooks  {"platform", "target_url", "secret"?, "order_ids"?}

The endpoints are unauthenticated: the simulator is meant for loopback only.
"""
from datetime import datetime

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from devtools.simulators.channels.endpoints import json_response

RULES = [
    Rule("/_sim/health", endpoint="health", methods=["GET"]),
    Rule("/_sim/advance", endpoint="advance", methods=["POST"]),
    Rule("/_sim/add", endpoint="add", methods=["POST"]),
    Rule("/_sim/raw", endpoint="raw", methods=["POST"]),
    Rule("/_sim/bulk", endpoint="bulk", methods=["POST"]),
    Rule("/_sim/fail", endpoint="fail", methods=["POST"]),
    Rule("/_sim/statuses", endpoint="statuses", methods=["GET"]),
    Rule("/_sim/orders/<platform>/<order_id>", endpoint="order", methods=["GET"]),
    Rule("/_sim/webhooks", endpoint="webhooks", methods=["POST"]),
]


def _aware(value: str, name: str) -> datetime:
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{name} needs a time zone offset")
    return moment


def _body(request: Request) -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValueError("send a JSON object")
    return body


def _handled(action):
    """Bad input answers 400 with the reason, in JSON."""
    def wrapper(sim, request: Request, **arguments) -> Response:
        try:
            return action(sim, request, **arguments)
        except (ValueError, TypeError, KeyError) as problem:
            return json_response({"error": str(problem)}, 400)
    wrapper.__name__ = action.__name__
    return wrapper


@_handled
def health(sim, request):
    with sim.lock:
        counts = {platform: len(book) for platform, book in sim.books.items()}
    return json_response({"status": "ok", "clock": sim.now().isoformat(), "orders": counts})


@_handled
def advance(sim, request):
    body = _body(request)
    events = sim.advance(int(body.get("events", 1)), body.get("platform"))
    return json_response({"events": [event.as_json() for event in events]})


@_handled
def add(sim, request):
    body = _body(request)
    platform = body.pop("platform")
    for name in ("created", "modified", "paid", "shipped", "closed"):
        if body.get(name):
            body[name] = _aware(body[name], name)
    order = sim.add_order(platform, **body)
    return json_response({"id": order.id, "order": sim.order_json(platform, order.id)}, 201)


@_handled
def raw(sim, request):
    body = _body(request)
    order_id = sim.put_raw(body["platform"], body["order"])
    return json_response({"id": order_id}, 201)


@_handled
def bulk(sim, request):
    body = _body(request)
    count = sim.bulk_generate(body["platform"], int(body["count"]))
    return json_response({"count": count}, 201)


@_handled
def fail(sim, request):
    body = _body(request)
    sim.fail_next(body["platform"], int(body.get("count", 1)), body.get("kind", "http500"),
                  delay=float(body.get("delay", 30.0)))
    return json_response({"queued": int(body.get("count", 1))})


@_handled
def statuses(sim, request):
    args = request.args
    pairs = sim.ids_and_statuses(args["platform"], _aware(args["since"], "since"), _aware(args["until"], "until"))
    return json_response({"orders": [{"id": order_id, "status": key} for order_id, key in pairs]})


@_handled
def order(sim, request, platform, order_id):
    found = sim.order_json(platform, order_id)
    if found is None:
        return json_response({"error": f"no {platform} order {order_id}"}, 404)
    return json_response(found)


@_handled
def webhooks(sim, request):
    body = _body(request)
    results = sim.push_webhooks(body["platform"], body["target_url"], body.get("secret"), body.get("order_ids"))
    return json_response({"deliveries": [result.as_json() for result in results]})


HANDLERS = {"health": health, "advance": advance, "add": add, "raw": raw, "bulk": bulk, "fail": fail,
            "statuses": statuses, "order": order, "webhooks": webhooks}
