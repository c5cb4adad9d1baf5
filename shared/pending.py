"""Work a transaction collects until it commits: audit events to seal, jobs to send.

Each item remembers the transaction (or savepoint) it was added in; when that rolls back the item is
dropped, because what it records or asks for did not happen.
"""
from sqlalchemy import event
from sqlalchemy.orm import Session

_KEYS: set[str] = set()


def add(session: Session, key: str, item) -> None:
    """Keep an item with the current transaction or savepoint until commit."""
    _KEYS.add(key)
    if not session.in_transaction():
        session.begin()  # an ORM-level transaction only: no connection is taken until a statement runs
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(key, []).append((transaction, item))


def take(session: Session, key: str) -> list:
    """Remove and return the items kept under a key, oldest first."""
    return [item for _transaction, item in session.info.pop(key, [])]


def within(transaction, rolled_back) -> bool:
    """Whether `transaction` is the transaction (or savepoint) that rolled back, or one nested inside it."""
    while transaction is not None:
        if transaction is rolled_back:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction) -> None:
    for key in _KEYS:
        if session.info.get(key):
            session.info[key] = [(t, item) for t, item in session.info[key] if not within(t, previous_transaction)]
