"""Notifications that leave Orderloom: group robots today."""
from shared.notify.robots import Alert, DeliveryResult, deliver, render_dingtalk, render_wecom

__all__ = ["Alert", "DeliveryResult", "deliver", "render_dingtalk", "render_wecom"]
