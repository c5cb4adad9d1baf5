"""All models, imported here so that metadata and mappers are complete wherever one is used."""
from shared.models.after_sales import (AfterSale, AfterSaleLine, AfterSalePhoto, AfterSalePolicy,
                                       AfterSaleReason)
from shared.models.approval import (ApprovalDecision, ApprovalDelegation, ApprovalRequest, ApprovalRule,
                                      ApprovalRuleStep, ApprovalStep)
from shared.models.audit import AccessLogEntry, AuditEvent, AuditSeal, AuditVerified
from shared.models.bulk import BulkJob, BulkJobItem, OrderAssignment, SavedOrderFilter
from shared.models.catalog import Sku, Warehouse
from shared.models.channel import Channel, OrderNumberSequence
from shared.models.dashboards import KpiTarget
from shared.models.customer import Customer, CustomerAddress, GuestLookupLock
from shared.models.exports import ExportDownload, ExportRequest
from shared.models.exceptions import (CannedReply, ExceptionCase, ExceptionEvent, ExceptionRoute,
                                      ExceptionSlaTarget)
from shared.models.finance import InvoiceProfile
from shared.models.invoices import InvoiceLineRow, InvoicePart, InvoiceRequest, InvoiceRequestOrder, RedLetter
from shared.models.fulfilment import (AlarmMute, Bin, CarrierAttempt, Device, FulfilmentAlarm, Lot, PickTask, ScanEvent,
                                      Shipment,
                                      StockTake, StockTakeLine, TrackingEvent, Wave)
from shared.models.order import Order, OrderLine
from shared.models.carrier_scores import CarrierScore, CarrierScoreRules, CarrierStanding
from shared.models.parcels import (ParcelCourier, ReturnPickup, ReturnPickupEvent, TransitEstimate,
                                    WarehouseReturnAddress)
from shared.models.payments import (OrderRefund, Payment, PaymentAccount, PaymentMismatch, PaymentNotice,
                                     PaymentReconciliation)
from shared.models.calendar import BusinessCalendar, BusinessCalendarDay
from shared.models.purchasing import PurchaseRun, PurchaseSuggestion, Supplier, SupplierSku
from shared.models.retention import LegalHold, RetentionPolicy
from shared.models.self_service import CustomerNotification, CustomerRequest, GuestCode, OrderMessage
from shared.models.second_factor import RecoveryCode, SecondFactor, StepUpGrant
from shared.models.staff_notes import CustomerNote, OrderNote, OrderTag
from shared.models.staff import ApiToken, PermissionRevision, RoleFieldVisibility, RoleGrant, StaffRole, StaffUser, Team
from shared.models.stock import Reservation, StockLevel, StockMovement
from shared.models.stock_offers import CustomerTier, ExpectedReceipt, SkuSubstitute, StockOffer, StockOfferSettings
from shared.models.sync import (ChannelConnection, InboxItem, OutboxEvent, PlatformRefund, ReconciliationDifference,
                                ReconciliationReport, SkuMapping, StatusMapping, SyncAlert, SyncRun, TrackingPush,
                                WebhookDelivery, WebhookRejection, WebhookRejectionRollup, WebhookSubscription)

__all__ = [
    "CustomerNote", "OrderNote", "OrderTag", "AlarmMute",
    "AfterSale", "AfterSaleLine", "AfterSalePhoto", "AfterSalePolicy", "AfterSaleReason",
    "InvoiceLineRow", "InvoicePart", "InvoiceRequest", "InvoiceRequestOrder", "RedLetter",
    "AccessLogEntry", "ApiToken", "AuditEvent", "AuditSeal", "AuditVerified", "Channel", "Customer", "CustomerAddress",
    "Order", "OrderLine", "OrderNumberSequence", "Reservation", "Sku", "StaffUser", "StockLevel",
    "StockMovement", "Warehouse", "ChannelConnection", "InboxItem", "OutboxEvent", "ReconciliationDifference",
    "ReconciliationReport", "SkuMapping", "StatusMapping", "SyncAlert", "SyncRun", "WebhookDelivery",
    "WebhookRejection", "WebhookSubscription", "Bin", "CarrierAttempt", "Device", "FulfilmentAlarm", "Lot",
    "PickTask", "ScanEvent", "Shipment", "StockTake", "StockTakeLine", "TrackingEvent", "Wave",
    "PlatformRefund", "TrackingPush", "GuestLookupLock", "WebhookRejectionRollup", "StaffRole", "RoleGrant",
    "RoleFieldVisibility", "PermissionRevision", "Team", "BusinessCalendar", "BusinessCalendarDay",
    "RecoveryCode", "SecondFactor", "StepUpGrant",
    "ExportDownload", "ExportRequest",
    "CannedReply", "ExceptionCase", "ExceptionEvent", "ExceptionRoute", "ExceptionSlaTarget",
    "ApprovalDecision", "ApprovalDelegation", "ApprovalRequest",
    "ApprovalRule", "ApprovalRuleStep", "ApprovalStep",
    "LegalHold", "RetentionPolicy", "KpiTarget", "InvoiceProfile",
    "OrderRefund", "Payment", "PaymentAccount", "PaymentMismatch", "PaymentNotice", "PaymentReconciliation",
    "CarrierScore", "CarrierScoreRules", "CarrierStanding",
    "ParcelCourier", "ReturnPickup", "ReturnPickupEvent", "TransitEstimate", "WarehouseReturnAddress",
    "CustomerNotification", "CustomerRequest", "GuestCode", "OrderMessage",
    "BulkJob", "BulkJobItem", "OrderAssignment", "SavedOrderFilter",
    "PurchaseRun", "PurchaseSuggestion", "Supplier", "SupplierSku",
    "CustomerTier", "ExpectedReceipt", "SkuSubstitute", "StockOffer", "StockOfferSettings",
]
