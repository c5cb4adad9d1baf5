"""The six platforms' order-list endpoints: check the request's signature or credentials, read the modified-time
window and the page, answer in the platform's JSON, or with the platform's own error body.

Each handler takes the simulator (for credentials, the lock and the order books) and a werkzeug Request. Error
bodies for a bad signature are the ones fixed in docs/CHANNELS.md; the other error bodies (wrong app key or token,
bad parameters, transient failures) are the simulator's rendering of each platform's documented error shapes.
"""
import base64
import binascii
import json
import math
import uuid
from bisect import bisect_right
from datetime import UTC
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from shared.channels.signing import constant_time_equal, douyin_sign, jd_sign, pdd_sign, top_sign
from devtools.simulators.channels import decrypt
from devtools.simulators.channels.formats import SHOPIFY_SHOP_ZONE, WOOCOMMERCE_SITE_ZONE, parse_beijing, parse_iso

TOP_BAD_SIGNATURE = {"error_response": {"code": 25, "msg": "Invalid signature", "sub_code": "isv.invalid-signature"}}
JD_BAD_SIGNATURE = {"error_response": {"code": "19", "zh_desc": "签名无效", "en_desc": "Invalid signature"}}
PDD_BAD_SIGNATURE = {"error_response": {"error_code": 10019, "error_msg": "签名错误"}}
DOUYIN_BAD_SIGNATURE = {"code": 40004, "msg": "签名校验失败", "data": {}}
SHOPIFY_UNAUTHORIZED = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}

# What each platform answers when asked to fail with an error body (fail_next kind="error_body"): throttling or
# a platform-side fault, the errors a poller must retry.
TRANSIENT_ERRORS = {
    "taobao": (200, {"error_response": {"code": 7, "msg": "App Call Limited",
                                        "sub_code": "accesscontrol.limited-by-api-access-count",
                                        "sub_msg": "This ban will last for 1 more seconds"}}),
    "jd": (200, {"error_response": {"code": "2", "zh_desc": "限制时间内调用失败次数", "en_desc": "App Call Limited"}}),
    "pinduoduo": (200, {"error_response": {"error_code": 70031, "error_msg": "调用过于频繁，请调整调用频率",
                                           "sub_code": "70031", "sub_msg": "接口调用频率超限"}}),
    "douyin": (200, {"code": 20000, "msg": "服务不可用", "sub_code": "isp.service-error",
                     "sub_msg": "服务暂时不可用，请稍后重试", "data": {}}),
    "shopify": (429, {"errors": "Exceeded 2 calls per second for api client. "
                                "Reduce request rates to resume uninterrupted service."}),
    "woocommerce": (500, {"code": "internal_server_error",
                          "message": "<p>There has been a critical error on this website.</p>",
                          "data": {"status": 500}}),
}


class BadParameter(Exception):
    """A business parameter the platform would refuse."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status, headers, content_type="application/json;charset=UTF-8")


def transient_error(platform: str) -> Response:
    status, body = TRANSIENT_ERRORS[platform]
    return json_response(body, status, {"Retry-After": "1.0"} if status == 429 else None)


def request_params(request: Request) -> dict[str, str]:
    """Query and form parameters (and a JSON object body) as one flat dict; the first value of each name wins."""
    params = {key: request.values.get(key) for key in request.values.keys()}
    if request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            params.update({key: value if isinstance(value, str) else json.dumps(value) for key, value in body.items()})
    return params


def _int(params: dict, name: str, default: int | None = None, low: int | None = None,
         high: int | None = None) -> int:
    value = params.get(name)
    if value in (None, ""):
        if default is None:
            raise BadParameter(name, f"Missing required arguments:{name}")
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise BadParameter(name, f"Invalid arguments:{name}") from None
    if (low is not None and number < low) or (high is not None and number > high):
        raise BadParameter(name, f"Invalid arguments:{name}")
    return number


def _beijing(params: dict, name: str) -> int:
    value = params.get(name)
    if not value:
        raise BadParameter(name, f"Missing required arguments:{name}")
    try:
        return int(parse_beijing(str(value)).timestamp())
    except ValueError:
        raise BadParameter(name, f"Invalid arguments:{name}") from None


def _page(selection: list, page_no: int, page_size: int) -> list:
    """1-based page of a selection."""
    return selection[(page_no - 1) * page_size:page_no * page_size]


# ---------------------------------------------------------------- Taobao TOP

TAOBAO_METHOD = "taobao.trades.sold.increment.get"


def _top_error(code: int, msg: str, sub_code: str | None = None, sub_msg: str | None = None) -> Response:
    error = {"code": code, "msg": msg}
    if sub_code:
        error["sub_code"] = sub_code
    if sub_msg:
        error["sub_msg"] = sub_msg
    error["request_id"] = uuid.uuid4().hex[:13]
    return json_response({"error_response": error})


def taobao(sim, request: Request) -> Response:
    params = request_params(request)
    credentials = sim.credentials["taobao"]
    if params.get("app_key") != credentials["app_key"]:
        return _top_error(29, "Invalid app Key", "isv.appkey-not-exists")
    if not constant_time_equal(params.get("sign"), top_sign(params, credentials["app_secret"])):
        return json_response(TOP_BAD_SIGNATURE)  # also when sign_method is not md5: only md5 is simulated
    if params.get("session") != credentials["access_token"]:
        return _top_error(27, "Invalid session", "invalid-sessionkey")
    if params.get("method") in decrypt.TOP_APIS:
        return decrypt.TOP_APIS[params["method"]](sim, params)
    if params.get("method") != TAOBAO_METHOD:
        return _top_error(22, "Invalid method")
    try:
        start, end = _beijing(params, "start_modified"), _beijing(params, "end_modified")
        page_no = _int(params, "page_no", 1, low=1)
        page_size = _int(params, "page_size", 40, low=1, high=100)
        if end < start:
            raise BadParameter("end_modified", "Invalid arguments:end_modified")
    except BadParameter as problem:
        code = 40 if str(problem).startswith("Missing") else 41
        return _top_error(code, str(problem), f"isv.{'missing' if code == 40 else 'invalid'}-parameter:{problem.name}")
    with sim.lock:
        book = sim.books["taobao"]
        selection = book.select(modified=(start, end))
        trades = [book.render(item) for item in _page(selection, page_no, page_size)]
        answer = {"total_results": len(selection), "has_next": page_no * page_size < len(selection)}
        if trades:  # TOP leaves out an empty list altogether
            answer["trades"] = {"trade": trades}
        answer["request_id"] = uuid.uuid4().hex[:13]
        return json_response({"trades_sold_increment_get_response": answer})


# ---------------------------------------------------------------- JD

JD_METHOD = "jingdong.pop.order.enSearch"
JD_RESPONSE = "jingdong_pop_order_enSearch_responce"  # sic: JD's own spelling


def _jd_error(code: str, zh_desc: str, en_desc: str) -> Response:
    return json_response({"error_response": {"code": code, "zh_desc": zh_desc, "en_desc": en_desc}})


def _jd_result(result: dict) -> Response:
    return json_response({JD_RESPONSE: {"code": "0", "searchorderinfo_result": result}})


def jd(sim, request: Request) -> Response:
    params = request_params(request)
    credentials = sim.credentials["jd"]
    if params.get("app_key") != credentials["app_key"]:
        return _jd_error("20", "无效的app_key", "Invalid app_key")
    if not constant_time_equal(params.get("sign"), jd_sign(params, credentials["app_secret"])):
        return json_response(JD_BAD_SIGNATURE)
    if params.get("access_token") != credentials["access_token"]:
        return _jd_error("19", "token已过期或者不存在，请重新授权访问", "Invalid access_token")
    if params.get("method") in decrypt.JD_APIS:
        return decrypt.JD_APIS[params["method"]](sim, params)
    if params.get("method") != JD_METHOD:
        return _jd_error("15", "不存在的方法名", "Invalid Method")
    try:
        business = json.loads(params.get("360buy_param_json") or "{}")
        if not isinstance(business, dict):
            raise BadParameter("360buy_param_json", "360buy_param_json must be a JSON object")
        start, end = _beijing(business, "start_date"), _beijing(business, "end_date")
        page = _int(business, "page", 1, low=1)
        page_size = _int(business, "page_size", 10, low=1, high=100)
        date_type = str(business.get("dateType", "1"))
        if date_type not in ("0", "1"):
            raise BadParameter("dateType", "Invalid arguments:dateType")
    except (BadParameter, ValueError) as problem:
        return _jd_result({"apiResult": {"success": False, "code": "100", "numberCode": 10100020,
                                         "chineseErrCode": "参数错误", "englishErrCode": str(problem)}})
    states = frozenset(state for state in str(business.get("order_state") or "").split(",") if state)
    # dateType 1 filters on the modified time (CHANNELS.md); 0 on the order's creation time.
    window = {"modified": (start, end)} if date_type == "1" else {"created": (start, end)}
    with sim.lock:
        book = sim.books["jd"]
        selection = book.select(**window, accept=(lambda item: item.status_key in states) if states else None,
                                accept_key=("order_state", states))
        orders = [book.render(item) for item in _page(selection, page, page_size)]
        return _jd_result({"apiResult": {"success": True, "code": "0", "numberCode": 10100000,
                                         "chineseErrCode": "成功", "englishErrCode": "success"},
                           "orderTotal": len(selection), "orderInfoList": orders})


# ---------------------------------------------------------------- Pinduoduo

PDD_TYPE = "pdd.order.list.increment.get"
PDD_MAX_WINDOW = 30 * 60  # end_updated_at − start_updated_at may not exceed 30 minutes


def _pdd_error(code: int, message: str, sub_msg: str | None = None) -> Response:
    error = {"error_code": code, "error_msg": message}
    if sub_msg:
        error["sub_msg"] = sub_msg
    error["request_id"] = uuid.uuid4().hex
    return json_response({"error_response": error})


def pinduoduo(sim, request: Request) -> Response:
    params = request_params(request)
    credentials = sim.credentials["pinduoduo"]
    if params.get("client_id") != credentials["app_key"]:
        return _pdd_error(10016, "client_id不存在")
    if not constant_time_equal(params.get("sign"), pdd_sign(params, credentials["app_secret"])):
        return json_response(PDD_BAD_SIGNATURE)
    if params.get("access_token") != credentials["access_token"]:
        return _pdd_error(10019, "access_token已过期")
    if params.get("type") in decrypt.PDD_APIS:
        return decrypt.PDD_APIS[params["type"]](sim, params)
    if params.get("type") != PDD_TYPE:
        return _pdd_error(10001, "接口不存在", f"type={params.get('type')}")
    try:
        start, end = _int(params, "start_updated_at"), _int(params, "end_updated_at")
        if not 0 <= end - start <= PDD_MAX_WINDOW:
            raise BadParameter("end_updated_at", "开始时间结束时间间距不能超过30分钟，且结束时间不能早于开始时间")
        page = _int(params, "page", 1, low=1)
        page_size = _int(params, "page_size", 100, low=1, high=100)
        order_status = _int(params, "order_status", 5)
        refund_status = _int(params, "refund_status", 5)
        lucky = _int(params, "is_lucky_flag", 0, low=0, high=2)
        if order_status not in (1, 2, 3, 5) or refund_status not in (1, 2, 3, 4, 5):
            raise BadParameter("order_status", "order_status或refund_status取值错误")
    except BadParameter as problem:
        return _pdd_error(10000, "参数错误", str(problem))

    def accept(item) -> bool:
        shown_order, _, shown_refund = item.status_key.partition("/")
        lucky_ok = lucky != 2 or (item.raw is not None and item.raw.get("is_lucky_flag") == 2)
        return (lucky_ok and (order_status == 5 or shown_order == str(order_status))
                and (refund_status == 5 or shown_refund == str(refund_status)))

    with sim.lock:
        book = sim.books["pinduoduo"]
        selection = book.select(modified=(start, end), accept=accept, accept_key=(order_status, refund_status, lucky))
        orders = [book.render(item) for item in _page(selection, page, page_size)]
        return json_response({"order_list_get_response": {
            "total_count": len(selection), "has_next": page * page_size < len(selection), "order_list": orders,
            "request_id": uuid.uuid4().hex}})


# ---------------------------------------------------------------- Douyin shop

DOUYIN_METHOD = "order.searchList"


def _douyin_error(code: int, msg: str, sub_code: str, sub_msg: str) -> Response:
    return json_response({"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg,
                          "log_id": uuid.uuid4().hex, "data": {}})


def douyin(sim, request: Request) -> Response:
    params = request_params(request)
    credentials = sim.credentials["douyin"]
    if params.get("app_key") != credentials["app_key"]:
        return _douyin_error(30001, "app_key不存在", "isv.app-key-invalid", "app_key无效")
    expected = douyin_sign(params.get("app_key") or "", params.get("method") or "", params.get("param_json") or "",
                           params.get("timestamp") or "", credentials["app_secret"], params.get("v") or "")
    if params.get("sign_method") != "hmac-sha256" or not constant_time_equal(params.get("sign"), expected):
        return json_response(DOUYIN_BAD_SIGNATURE)
    if params.get("access_token") != credentials["access_token"]:
        return _douyin_error(30002, "access_token已过期", "isv.access-token-expired", "access_token无效或已过期")
    method = params.get("method") or ""
    if method in decrypt.DOUYIN_APIS and request.path.endswith("/" + method.replace(".", "/")):
        return decrypt.DOUYIN_APIS[method](sim, params)
    if params.get("method") != DOUYIN_METHOD or not request.path.endswith("/order/searchList"):
        return _douyin_error(40003, "参数不合法", "isv.parameter-invalid", "method与请求路径不一致")
    try:
        business = json.loads(params.get("param_json") or "{}")
        if not isinstance(business, dict):
            raise BadParameter("param_json", "param_json必须是JSON对象")
        page = _int(business, "page", 0, low=0)
        size = _int(business, "size", 10, low=1, high=100)
        windows = {}
        if "update_time_start" in business or "update_time_end" in business:
            windows["modified"] = (_int(business, "update_time_start", 0), _int(business, "update_time_end", 2**40))
        if "create_time_start" in business or "create_time_end" in business:
            windows["created"] = (_int(business, "create_time_start", 0), _int(business, "create_time_end", 2**40))
        order_by = str(business.get("order_by") or "create_time")
        if order_by not in ("create_time", "update_time"):
            raise BadParameter("order_by", "order_by只能是create_time或update_time")
    except (BadParameter, ValueError) as problem:
        return _douyin_error(40003, "参数不合法", "isv.parameter-invalid", str(problem))
    descending = not business.get("order_asc", False)  # newest first unless order_asc is true
    with sim.lock:
        book = sim.books["douyin"]
        selection = book.select(**windows, order_by="modified" if order_by == "update_time" else "created",
                                descending=descending)
        orders = [book.render(item) for item in selection[page * size:(page + 1) * size]]
        return json_response({"code": 10000, "msg": "success", "sub_code": "", "sub_msg": "",
                              "log_id": uuid.uuid4().hex,
                              "data": {"shop_order_list": orders, "page": page, "size": size,
                                       "total": len(selection)}})


# ---------------------------------------------------------------- Shopify

SHOPIFY_STATUS_FILTERS = {"open": ("open",), "closed": ("closed", "cancelled"), "cancelled": ("cancelled",),
                          "any": ("open", "closed", "cancelled")}


def _shopify_bad_request(errors: dict) -> Response:
    return json_response({"errors": errors}, 400)


def _shopify_time(value: str | None, name: str) -> int | None:
    """updated_at_min and friends: ISO 8601; a value without an offset is read in the shop's zone."""
    if not value:
        return None
    try:
        return int(parse_iso(value, SHOPIFY_SHOP_ZONE).timestamp())
    except ValueError:
        raise BadParameter(name, "is invalid") from None


def _encode_cursor(cursor: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(cursor, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(text: str) -> dict:
    try:
        cursor = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):
        raise BadParameter("page_info", "Invalid value.") from None
    if not isinstance(cursor, dict) or "filters" not in cursor:
        raise BadParameter("page_info", "Invalid value.")
    return cursor


def _shopify_filters(args) -> dict:
    status = args.get("status", "open")
    if status not in SHOPIFY_STATUS_FILTERS:
        raise BadParameter("status", "is invalid")
    return {"status": status,
            "updated": [_shopify_time(args.get("updated_at_min"), "updated_at_min"),
                        _shopify_time(args.get("updated_at_max"), "updated_at_max")],
            "created": [_shopify_time(args.get("created_at_min"), "created_at_min"),
                        _shopify_time(args.get("created_at_max"), "created_at_max")]}


def _window(bounds: list) -> tuple[int, int] | None:
    if bounds[0] is None and bounds[1] is None:
        return None
    return (bounds[0] if bounds[0] is not None else 0, bounds[1] if bounds[1] is not None else 2**40)


def shopify(sim, request: Request, version: str) -> Response:
    """GET /admin/api/{version}/orders.json; pages by cursor: the next page is in the Link header.

    As on Shopify, a request with page_info carries no filters of its own: they travel inside the cursor.
    """
    if not constant_time_equal(request.headers.get("X-Shopify-Access-Token"),
                               sim.credentials["shopify"]["access_token"]):
        return json_response(SHOPIFY_UNAUTHORIZED, 401)
    args = request.args
    try:
        limit = _int(args, "limit", 50, low=1, high=250)
        cursor = _decode_cursor(args["page_info"]) if args.get("page_info") else None
        filters = cursor["filters"] if cursor else _shopify_filters(args)
    except BadParameter as problem:
        return _shopify_bad_request({problem.name: str(problem)})
    shown = SHOPIFY_STATUS_FILTERS[filters["status"]]
    with sim.lock:
        book = sim.books["shopify"]
        selection = book.select(modified=_window(filters["updated"]), created=_window(filters["created"]),
                                accept=lambda item: item.open_state in shown, accept_key=("status", shown))
        start = 0
        if cursor and cursor.get("after"):
            start = _position_after(selection, cursor["after"])
        elif cursor and cursor.get("before"):
            start = max(_position_after(selection, cursor["before"]) - 1 - limit, 0)
        page = selection[start:start + limit]
        orders = [book.render(item) for item in page]
        fields = [name for name in (args.get("fields") or "").split(",") if name]
        if fields:
            orders = [{name: order[name] for name in fields if name in order} for order in orders]
        links = []
        base = f"{sim.url('shopify')}/admin/api/{version}/orders.json"
        if start > 0 and page:
            previous = _encode_cursor({"filters": filters, "before": _sort_key(page[0])})
            links.append(f'<{base}?{urlencode({"limit": limit, "page_info": previous})}>; rel="previous"')
        if start + limit < len(selection):
            following = _encode_cursor({"filters": filters, "after": _sort_key(page[-1])})
            links.append(f'<{base}?{urlencode({"limit": limit, "page_info": following})}>; rel="next"')
        return json_response({"orders": orders}, headers={"Link": ", ".join(links)} if links else None)


def _sort_key(item) -> list:
    return [item.modified_ts, item.order_id]


def _position_after(selection: list, key: list) -> int:
    """Index of the first listing sorting after `key` (selection is ordered by modified time, then id)."""
    return bisect_right(selection, (key[0], key[1]), key=lambda item: (item.modified_ts, item.order_id))


# ---------------------------------------------------------------- WooCommerce

def _woo_error(code: str, message: str, status: int, params: dict | None = None) -> Response:
    data = {"status": status}
    if params:
        data["params"] = params
    return json_response({"code": code, "message": message, "data": data}, status)


def woo_authenticate(sim, request: Request) -> Response | None:
    credentials = sim.credentials["woocommerce"]
    auth = request.authorization
    key, secret = (auth.username, auth.password) if auth and auth.type == "basic" else (
        request.args.get("consumer_key"), request.args.get("consumer_secret"))
    if not key:
        return _woo_error("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.", 401)
    if not constant_time_equal(key, credentials["consumer_key"]):
        return _woo_error("woocommerce_rest_authentication_error", "Consumer key is invalid.", 401)
    if not constant_time_equal(secret, credentials["consumer_secret"]):
        return _woo_error("woocommerce_rest_authentication_error", "Consumer secret is invalid.", 401)
    return None


def _woo_time(args, name: str, gmt: bool) -> int | None:
    """modified_after and friends: with dates_are_gmt=true a value without an offset is UTC, else site time."""
    value = args.get(name)
    if not value:
        return None
    try:
        return int(parse_iso(value, UTC if gmt else WOOCOMMERCE_SITE_ZONE).timestamp())
    except ValueError:
        raise BadParameter(name, f"Invalid date.{name}") from None


def woocommerce(sim, request: Request) -> Response:
    """GET /wp-json/wc/v3/orders; pages by number, with X-WP-Total and X-WP-TotalPages."""
    refused = woo_authenticate(sim, request)
    if refused is not None:
        return refused
    args = request.args
    gmt = args.get("dates_are_gmt", "false").lower() in ("true", "1")
    try:
        page = _int(args, "page", 1, low=1)
        per_page = _int(args, "per_page", 10, low=1, high=100)
        modified = _window([_woo_time(args, "modified_after", gmt), _woo_time(args, "modified_before", gmt)])
        created = _window([_woo_time(args, "after", gmt), _woo_time(args, "before", gmt)])
        order_by = args.get("orderby", "date")
        if order_by not in ("date", "modified", "id"):
            raise BadParameter("orderby", "orderby is not one of date, modified and id.")
        descending = args.get("order", "desc") != "asc"
    except BadParameter as problem:
        return _woo_error("rest_invalid_param", f"Invalid parameter(s): {problem.name}", 400,
                          {problem.name: str(problem)})
    statuses = frozenset(status for status in args.get("status", "any").split(",") if status and status != "any")
    with sim.lock:
        book = sim.books["woocommerce"]
        selection = book.select(modified=modified, created=created,
                                accept=(lambda item: item.status_key in statuses) if statuses else None,
                                accept_key=("status", statuses),
                                order_by={"date": "created", "modified": "modified", "id": "id"}[order_by],
                                descending=descending)
        orders = [book.render(item) for item in _page(selection, page, per_page)]
        total_pages = math.ceil(len(selection) / per_page)
        headers = {"X-WP-Total": str(len(selection)), "X-WP-TotalPages": str(total_pages)}
        base = f"{sim.url('woocommerce')}/wp-json/wc/v3/orders"
        if page < total_pages:
            query = {**args.to_dict(), "page": page + 1}
            query.pop("consumer_key", None)  # never echo credentials into a header
            query.pop("consumer_secret", None)
            headers["Link"] = f'<{base}?{urlencode(query)}>; rel="next"'
        return json_response(orders, headers=headers)
