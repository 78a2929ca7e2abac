"""Request and response shapes of ``/contact_lists``."""

from __future__ import annotations

from pydantic import BaseModel, Field

from bulkcall.db.models import ContactList
from bulkcall.schemas.base import LongText, Name, PatchModel, RequestModel, ResponseModel, RowId, UtcDatetime

MAX_MEMBERSHIP_IDS = 10_000


class ContactListCreate(RequestModel):
    name: Name
    description: LongText | None = None


class ContactListUpdate(PatchModel):
    nullable_fields = frozenset({"description"})

    name: Name | None = None
    description: LongText | None = None


class ContactListOut(ResponseModel):
    id: int
    name: str
    description: str | None
    contacts_count: int = Field(description="Contacts currently in the list")
    created_at: UtcDatetime
    updated_at: UtcDatetime

    @classmethod
    def of(cls, row: ContactList, contacts_count: int) -> ContactListOut:
        return cls(
            id=row.id,
            name=row.name,
            description=row.description,
            contacts_count=contacts_count,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class ContactIds(RequestModel):
    contact_ids: list[RowId] = Field(
        min_length=1,
        max_length=MAX_MEMBERSHIP_IDS,
        description=f"1..{MAX_MEMBERSHIP_IDS} contact ids of this workspace (repeats count once)",
    )


class MembersAdded(BaseModel):
    added: int = Field(description="Contacts that were not in the list before")
    already_members: int = Field(description="Contacts that were already in the list (left as they were)")
    contact_list: ContactListOut


class MembersRemoved(BaseModel):
    removed: int = Field(description="Contacts taken out of the list")
    not_members: int = Field(description="Ids that were not in the list (including unknown ids)")
    contact_list: ContactListOut
