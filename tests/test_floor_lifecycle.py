"""The floor's lifecycles as data: shipments, waves and pick tasks move only along their declared transitions."""
from types import SimpleNamespace

import pytest

from shared.floor_lifecycle import PICK_TASK, SHIPMENT, WAVE
from shared.services.errors import Conflict


def test_a_parcel_walks_the_floor_in_order_and_never_skips_a_step():
    parcel = SimpleNamespace(status=SHIPMENT.initial)
    for step in ("waved", "picking", "picked", "packed", "shipped", "delivered"):
        SHIPMENT.move(parcel, step)
        assert parcel.status == step
    skipper = SimpleNamespace(status="picking")
    with pytest.raises(Conflict) as refused:
        SHIPMENT.move(skipper, "shipped")  # not packed: no waybill, nothing to load
    assert refused.value.code == "invalid_shipment_transition" and skipper.status == "picking"


def test_a_shipped_parcel_cannot_be_cancelled_but_every_parcel_in_the_warehouse_can():
    assert set(SHIPMENT.sources("cancelled")) == {"allocated", "waved", "picking", "picked", "packed"}
    with pytest.raises(Conflict):
        SHIPMENT.move(SimpleNamespace(status="shipped"), "cancelled")


def test_a_short_wave_release_puts_the_parcel_back_in_the_pool_only_from_the_wave():
    assert SHIPMENT.sources("allocated") == ("waved",)


def test_a_wave_release_may_resume_but_a_released_wave_is_never_released_again():
    wave = SimpleNamespace(status="planned")
    WAVE.move(wave, "releasing")
    WAVE.move(wave, "releasing")  # a job that died halfway resumes
    WAVE.move(wave, "released")
    with pytest.raises(Conflict):
        WAVE.move(wave, "releasing")


def test_a_done_pick_task_stays_done():
    task = SimpleNamespace(status="open")
    PICK_TASK.move(task, "picking")
    PICK_TASK.move(task, "done")
    with pytest.raises(Conflict):
        PICK_TASK.move(task, "picking")


def test_the_partial_indexes_cover_exactly_the_lifecycles_open_states():
    """The index predicates are SQL text (a migration holds the same text); the open states are declared once in
    the lifecycles. A state added to one and not the other would leave rows out of the board's index."""
    from shared.lifecycle import OPEN_STATUSES
    from shared.floor_lifecycle import OPEN_SHIPMENT_STATES
    from shared.models.fulfilment import OPEN_SHIPMENTS_WHERE
    from shared.models.order import OPEN_ORDERS_WHERE

    def states(where: str) -> list[str]:
        assert where.startswith("status IN (") and where.endswith(")"), where
        return [item.strip().strip("'") for item in where[len("status IN ("):-1].split(",")]

    assert states(OPEN_ORDERS_WHERE) == [status.value for status in OPEN_STATUSES]
    assert states(OPEN_SHIPMENTS_WHERE) == [*OPEN_SHIPMENT_STATES, "shipped"]  # the board also shows shipped
