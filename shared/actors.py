"""Who is acting: taken at the request or job boundary and passed to every service explicitly."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    id: int | None
    label: str
    role: str
    ip: str | None = None

    @classmethod
    def for_staff(cls, user, ip: str | None = None) -> "Actor":
        return cls(id=user.id, label=user.username, role=user.role, ip=ip)

    @classmethod
    def for_customer(cls, customer, ip: str | None = None) -> "Actor":
        return cls(id=None, label=f"customer:{customer.id}", role="customer", ip=ip)


SYSTEM = Actor(id=None, label="system", role="system")
