"""Template filters both apps share."""
from flask import Flask, g

from shared import labels, verbs
from shared.money import format_money
from shared.labels import DATE_FORMAT_HINT, TIME_IN_ZONE, zone_name
from shared.timekeeping import to_zone


def install_common_filters(app: Flask) -> None:
    """Filters both apps use; time is shown in the viewer's zone, money with two decimals."""

    @app.template_filter("money")
    def _money(amount, currency: str = ""):
        text = format_money(amount) or ""
        return f"{currency} {text}".strip()

    @app.template_filter("localtime")
    def _localtime(moment, fmt: str = "%Y-%m-%d %H:%M", named: bool = True):
        """In the viewer's (else the merchant's) zone, the zone named: "2026-12-04 18:30 (北京时间)"."""
        zone = g.get("timezone") or app.config["MERCHANT_TIMEZONE"]
        local = to_zone(moment, zone)
        if not local:
            return ""
        return str(TIME_IN_ZONE) % {"time": local.strftime(fmt), "zone": zone_name(zone)} if named \
            else local.strftime(fmt)

    app.add_template_global(lambda: zone_name(g.get("timezone") or app.config["MERCHANT_TIMEZONE"]), "zone_name")

    @app.template_global("date_lang")
    def _date_lang() -> str:
        """The `lang` of a date input: the page's language, so the input follows the UI, not the browser."""
        from shared.appcore import current_language

        return "zh-CN" if current_language() == "zh_CN" else "en"

    @app.template_global("date_hint")
    def _date_hint() -> str:
        """The format a date input expects, in the UI language (shown beside it and as its title)."""
        return str(DATE_FORMAT_HINT)

    @app.template_filter("isotime")
    def _isotime(moment):
        zone = g.get("timezone") or app.config["MERCHANT_TIMEZONE"]
        local = to_zone(moment, zone)
        return local.isoformat() if local else ""

    for name, table in (("status_label", labels.STATUS), ("payment_label", labels.PAYMENT),
                        ("refund_label", labels.REFUND), ("resource_label", labels.RESOURCE),
                        ("action_label", labels.ACTION), ("visibility_label", labels.VISIBILITY),
                        ("field_label", labels.PERSONAL_FIELD),
                        ("movement_label", labels.MOVEMENT), ("reservation_label", labels.RESERVATION),
                        ("customer_status_label", labels.CUSTOMER_STATUS),
                        ("exception_category_label", labels.EXCEPTION_CATEGORY),
                        ("exception_kind_label", labels.EXCEPTION_KIND),
                        ("exception_state_label", labels.EXCEPTION_STATE),
                        ("exception_move_label", labels.EXCEPTION_MOVE), ("sla_clock_label", labels.SLA_CLOCK),
                        ("exception_event_label", labels.EXCEPTION_EVENT),
                        ("order_tag_label", labels.ORDER_TAG)):
        app.add_template_filter(lambda code, table=table: labels.label(table, code), name)

    app.add_template_filter(labels.role_name, "role_label")
    app.add_template_global(verbs.verb, "verb")  # a lifecycle move's button: verb('order', 'on_hold') → 挂起

    @app.template_filter("query_with")
    def _query_with(args, **changes):
        """The current query parameters with some replaced; None removes one (for sort and page links)."""
        params = args.to_dict(flat=False)
        for key, value in changes.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = value
        return params
