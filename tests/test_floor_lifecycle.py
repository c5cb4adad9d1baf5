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
