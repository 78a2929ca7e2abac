"""All tables; importing this module registers every model on ``Base.metadata``."""

from bulkcall.db.models.agent import Agent
from bulkcall.db.models.base import Base
from bulkcall.db.models.campaign import (
    CallAttempt,
    CallTask,
    Campaign,
    CampaignAudienceEntry,
    CampaignEvent,
    CampaignPhoneNumber,
    CampaignTemplate,
    ProviderCallback,
)
from bulkcall.db.models.contact import (
    Contact,
    ContactImport,
    ContactImportError,
    ContactList,
    ContactListMember,
    DncEntry,
)
from bulkcall.db.models.idempotency import IdempotencyRecord
from bulkcall.db.models.insight import CampaignCallStat, CampaignReachStat, CampaignTalkStat, CampaignTaskCount
from bulkcall.db.models.telephony import PhoneNumber, TelephonyConnection
from bulkcall.db.models.webhook import (
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
    WebhookFanoutCursor,
)
from bulkcall.db.models.workspace import ApiKey, Workspace

__all__ = [
    "Agent",
    "ApiKey",
    "Base",
    "CallAttempt",
    "CallTask",
    "Campaign",
    "CampaignAudienceEntry",
    "CampaignCallStat",
    "CampaignEvent",
    "CampaignPhoneNumber",
    "CampaignReachStat",
    "CampaignTalkStat",
    "CampaignTaskCount",
    "CampaignTemplate",
    "Contact",
    "ContactImport",
    "ContactImportError",
    "ContactList",
    "ContactListMember",
    "DncEntry",
    "IdempotencyRecord",
    "PhoneNumber",
    "ProviderCallback",
    "TelephonyConnection",
    "WebhookDelivery",
    "WebhookDeliveryAttempt",
    "WebhookEndpoint",
    "WebhookFanoutCursor",
    "Workspace",
]
