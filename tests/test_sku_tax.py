"""SKU tax data (issue 12 item 2): one SKU set by hand, a CSV/XLSX import that is all or nothing with a report of
every bad row, missing_tax_data for invoice requests, and the catalog pages. Both backends."""
import io

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from shared.extensions import db
from shared.models import AuditEvent, Sku
from shared.services import catalog, sku_tax
from shared.services.errors import ValidationFailed
from tests.factories import ADMIN
from tests.portal_client import csrf_token

TEA_CODE = "1030201000000000000"
HEADER = "sku,tax_code,tax_short_name,tax_rate,tax_free,tax_unit\n"


@pytest.fixture
def skus(session):
    made = [catalog.create_sku({"sku": code, "name": name}, ADMIN)
            for code, name in (("TEA-1", "龙井茶 250g"), ("BOOK-1", "图书"), ("SVC-1", "安装服务"))]
    db.session.commit()
    return made


def tax_of(code: str) -> tuple:
    sku = db.session.execute(select(Sku).where(Sku.code == code)).scalar_one()
    return sku.tax_code, sku.tax_short_name, sku.tax_rate, sku.tax_free, sku.tax_unit


def test_one_sku_is_set_and_audited(skus):
    sku_tax.set_tax_data(skus[0], {"tax_code": TEA_CODE, "tax_short_name": "茶叶", "tax_rate": "9",
                                   "tax_unit": "盒"}, ADMIN)
    db.session.commit()
    assert tax_of("TEA-1") == (TEA_CODE, "茶叶", 9, None, "盒")
    assert db.session.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "sku",
                                                              AuditEvent.action == "sku.tax_data")).scalar_one()


@pytest.mark.parametrize("changes, field, code", [
    ({"tax_code": "103020100000000000"}, "tax_code", "invalid_tax_code"),  # 18 digits
    ({"tax_code": "10302010000000000A0"}, "tax_code", "invalid_tax_code"),
    ({"tax_rate": "10"}, "tax_rate", "invalid_tax_rate"),
    ({"tax_rate": None}, "tax_rate", "required"),
    ({"tax_rate": "13", "tax_free": "exempt"}, "tax_rate", "invalid_tax_rate"),
    ({"tax_rate": None, "tax_free": "free"}, "tax_free", "invalid_tax_free"),
    ({"tax_short_name": "*茶叶*"}, "tax_short_name", "forbidden_character"),
    ({"tax_short_name": ""}, "tax_short_name", "required"),
    ({"tax_unit": ""}, "tax_unit", "required"),
])
def test_bad_tax_data_is_refused_and_changes_nothing(skus, changes, field, code):
    data = {"tax_code": TEA_CODE, "tax_short_name": "茶叶", "tax_rate": "9", "tax_unit": "盒", **changes}
    with pytest.raises(ValidationFailed) as refused:
        sku_tax.set_tax_data(skus[0], data, ADMIN)
    assert (refused.value.field, refused.value.code) == (field, code)
    db.session.rollback()
    assert tax_of("TEA-1") == (None, None, None, None, None)


def test_tax_free_flags_keep_rate_zero_and_rates_read_as_percent(skus):
    sku_tax.set_tax_data(skus[1], {"tax_code": "1060101000000000000", "tax_short_name": "图书", "tax_free": "免税",
                                   "tax_unit": "本"}, ADMIN)
    sku_tax.set_tax_data(skus[2], {"tax_code": "3040203000000000000", "tax_short_name": "安装服务",
                                   "tax_rate": "0.06", "tax_unit": "次"}, ADMIN)
    assert tax_of("BOOK-1")[2:4] == (0, "exempt")
    assert tax_of("SVC-1")[2] == 6


def test_missing_tax_data_names_each_sku_and_what_it_lacks(skus):
    sku_tax.set_tax_data(skus[0], {"tax_code": TEA_CODE, "tax_short_name": "茶叶", "tax_rate": 13,
                                   "tax_unit": "盒"}, ADMIN)
    missing = sku_tax.missing_tax_data([s.id for s in skus])
    assert missing == [("BOOK-1", ["tax_code", "tax_short_name", "tax_rate", "tax_unit"]),
                       ("SVC-1", ["tax_code", "tax_short_name", "tax_rate", "tax_unit"])]
    assert sku_tax.missing_tax_data([skus[0].id]) == []
    assert sku_tax.missing_tax_data([]) == []


def test_an_import_with_a_malformed_row_applies_nothing_and_reports_every_bad_row(skus):
    data = (HEADER + f"TEA-1,{TEA_CODE},茶叶,9,,盒\n"
            "BOOK-1,10601010000,图书,,exempt,本\n"  # code too short
            f"NOPE-9,{TEA_CODE},茶叶,13,,盒\n"  # unknown SKU
            f"TEA-1,{TEA_CODE},茶叶,9,,盒\n").encode()  # twice
    report = sku_tax.import_tax_data("tax.csv", data, ADMIN)
    assert not report.applied
    assert [(p.line, p.sku, p.field, p.code) for p in report.problems] == [
        (3, "BOOK-1", "tax_code", "invalid_tax_code"), (4, "NOPE-9", "sku", "unknown_sku"),
        (5, "TEA-1", "sku", "duplicate_sku")]
    db.session.rollback()
    assert tax_of("TEA-1") == (None, None, None, None, None)


def test_a_good_csv_is_applied_in_full(skus):
    data = (HEADER + f"TEA-1,{TEA_CODE},茶叶,13%,,盒\n"
            "BOOK-1,1060101000000000000,图书,,不征税,本\n").encode("gb18030")
    report = sku_tax.import_tax_data("tax.csv", data, ADMIN)
    assert report.applied and report.changed == 2
    db.session.commit()
    assert tax_of("TEA-1") == (TEA_CODE, "茶叶", 13, None, "盒")
    assert tax_of("BOOK-1")[3] == "untaxed"
    again = sku_tax.import_tax_data("tax.csv", data, ADMIN)
    assert again.applied and (again.changed, again.unchanged) == (0, 2)


def xlsx(rows) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_xlsx_with_a_numeric_code_cell_is_refused(skus):
    header = ["sku", "tax_code", "tax_short_name", "tax_rate", "tax_unit"]
    bad = xlsx([header, ["TEA-1", 1030201000000000000, "茶叶", 0.09, "盒"]])
    report = sku_tax.import_tax_data("tax.xlsx", bad, ADMIN)
    assert [(p.line, p.code) for p in report.problems] == [(2, "invalid_tax_code")]
    good = xlsx([header, ["TEA-1", TEA_CODE, "茶叶", 0.09, "盒"]])
    assert sku_tax.import_tax_data("tax.xlsx", good, ADMIN).applied
    assert tax_of("TEA-1")[2] == 9


def test_a_file_without_a_rate_column_is_refused(skus):
    with pytest.raises(ValidationFailed) as refused:
        sku_tax.import_tax_data("tax.csv", f"sku,tax_code,tax_short_name,tax_unit\nTEA-1,{TEA_CODE},茶叶,盒\n"
                                .encode(), ADMIN)
    assert refused.value.code == "missing_column"


def test_the_catalog_tax_page_sets_one_sku_and_imports(client_for, skus):
    client = client_for("admin")
    page = client.get("/catalog/tax")
    assert page.status_code == 200 and "TEA-1" in page.text  # listed as lacking tax data
    token = csrf_token(client, "/catalog/tax")
    bad = client.post("/catalog/tax", data={"csrf_token": token, "sku": "TEA-1", "tax_code": "123",
                                            "tax_short_name": "茶叶", "rate": "9", "tax_unit": "盒"})
    assert bad.status_code == 422 and 'data-field="tax_code"' in bad.text
    good = client.post("/catalog/tax", data={"csrf_token": token, "sku": "TEA-1", "tax_code": TEA_CODE,
                                             "tax_short_name": "茶叶", "rate": "exempt", "tax_unit": "盒"})
    assert good.status_code == 303
    assert tax_of("TEA-1") == (TEA_CODE, "茶叶", 0, "exempt", "盒")
    malformed = (HEADER + "BOOK-1,1060101000000000000,图书,7,,本\n").encode()
    answer = client.post("/catalog/tax/import", data={"csrf_token": token,
                                                      "file": (io.BytesIO(malformed), "tax.csv")},
                         content_type="multipart/form-data")
    assert answer.status_code == 422 and 'data-line="2"' in answer.text
    assert tax_of("BOOK-1")[0] is None


def test_a_role_without_catalog_edit_cannot_set_tax_data(client_for, skus):
    client = client_for("auditor")
    token = csrf_token(client, "/catalog/tax") if client.get("/catalog/tax").status_code == 200 else \
        csrf_token(client, "/")
    answer = client.post("/catalog/tax", data={"csrf_token": token, "sku": "TEA-1", "tax_code": TEA_CODE,
                                               "tax_short_name": "茶叶", "rate": "9", "tax_unit": "盒"})
    assert answer.status_code == 403
    assert tax_of("TEA-1")[0] is None
