"""CSV and XLSX downloads, read back the way Excel users' tools would: content, types, formula guard, speed."""
import csv
import io
import re
import zipfile
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from shared.exports import csv_bytes, xlsx_bytes

HEADERS = ["订单号", "买家", "金额", "下单时间", "备注"]
PLACED = datetime(2026, 3, 1, 16, 30, 5, tzinfo=UTC)  # 2026-03-02 00:30:05 in Shanghai
ROWS = [
    ["OL-0001", "张三", Decimal("1280.50"), PLACED, "请用顺丰，谢谢"],
    ["OL-0002", "李四", Decimal("-12.00"), datetime(2026, 3, 2, 9, 0), None],
]
ATTACKS = ["=HYPERLINK(\"http://evil\",\"点我\")", "+1+2", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


def read_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def read_xlsx(data: bytes):
    return load_workbook(io.BytesIO(data))


def test_csv_round_trip_with_bom_and_chinese():
    data = csv_bytes(HEADERS, ROWS)

    assert data.startswith(b"\xef\xbb\xbf")  # the BOM that makes Excel read UTF-8
    assert read_csv(data) == [
        HEADERS,
        ["OL-0001", "张三", "1280.50", "2026-03-02 00:30:05", "请用顺丰，谢谢"],
        ["OL-0002", "李四", "-12.00", "2026-03-02 09:00:00", ""],
    ]


def test_csv_neutralises_formulas_in_text_but_not_numbers():
    rows = [[attack, Decimal("-5.00"), -3] for attack in ATTACKS]
    read = read_csv(csv_bytes(["text", "amount", "count"], rows))[1:]

    assert [row[0] for row in read] == ["'" + attack for attack in ATTACKS]
    assert all(row[1:] == ["-5.00", "-3"] for row in read)


def test_csv_quotes_commas_quotes_and_newlines():
    tricky = ['含,逗号', '含"引号"', "两\n行", "普通 - 文本"]
    assert read_csv(csv_bytes(["a", "b", "c", "d"], [tricky]))[1] == tricky


def test_csv_converts_aware_times_to_the_zone_given():
    moment = datetime(2026, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert read_csv(csv_bytes(["t"], [[moment]], zone="Asia/Shanghai"))[1] == ["2026-01-01 13:00:00"]
    assert read_csv(csv_bytes(["t"], [[moment]], zone="Europe/Berlin"))[1] == ["2026-01-01 06:00:00"]


def test_xlsx_round_trip_types_and_header():
    book = read_xlsx(xlsx_bytes(HEADERS, ROWS, sheet_title="三月订单"))
    sheet = book["三月订单"]

    assert book.sheetnames == ["三月订单"]
    assert [cell.value for cell in sheet[1]] == HEADERS
    assert all(cell.font.bold for cell in sheet[1])
    assert sheet.freeze_panes == "A2"
    first, second = sheet[2], sheet[3]
    assert [first[0].value, first[1].value, first[4].value] == ["OL-0001", "张三", "请用顺丰，谢谢"]
    # Excel numbers are doubles; the value and the places shown are what the Decimal said.
    assert first[2].data_type == "n" and Decimal(str(first[2].value)) == Decimal("1280.50")
    assert first[2].number_format == "0.00"
    assert Decimal(str(second[2].value)) == Decimal("-12.00")
    # Aware: shown in Shanghai time; naive: written as it is.
    assert first[3].value == datetime(2026, 3, 2, 0, 30, 5) and first[3].is_date
    assert second[3].value == datetime(2026, 3, 2, 9, 0)
    assert second[4].value is None


def test_xlsx_keeps_decimals_exact_to_the_cent():
    amounts = [Decimal("0.10"), Decimal("0.20"), Decimal("99999999.99"), Decimal("1234567.89"), Decimal("7")]
    sheet = read_xlsx(xlsx_bytes(["金额"], [[amount] for amount in amounts])).active
    assert [Decimal(str(row[0])) for row in sheet.iter_rows(min_row=2, values_only=True)] == amounts


def test_xlsx_neutralises_formulas():
    sheet = read_xlsx(xlsx_bytes(["text", "number"], [[attack, -1] for attack in ATTACKS])).active
    cells = [row[0] for row in sheet.iter_rows(min_row=2)]

    # XML parsers turn a bare CR into LF (openpyxl does not write it as _x000D_); the apostrophe is what counts.
    assert [cell.value for cell in cells] == ["'" + attack.replace("\r", "\n") for attack in ATTACKS]
    assert all(cell.data_type == "s" for cell in cells)
    assert all(row[1].value == -1 for row in sheet.iter_rows(min_row=2))


def test_xlsx_survives_text_excel_would_misread_or_refuse():
    sheet = read_xlsx(xlsx_bytes(["备注"], [["#N/A"], ["控制\x01字符\x1b"], [date(2026, 5, 1)], ["x" * 40000]])).active
    na, control, day, long = (row[0] for row in sheet.iter_rows(min_row=2))

    assert (na.value, na.data_type) == ("#N/A", "s")  # text, not an Excel error value
    assert control.value == "控制字符"
    assert day.value == datetime(2026, 5, 1) and day.number_format == "yyyy-mm-dd"
    assert len(long.value) == 32767


def test_sheet_title_is_made_acceptable_to_excel():
    book = read_xlsx(xlsx_bytes(["a"], [], sheet_title="2026/03 [退款]: 明细与汇总（含平台补贴及运费险等项目说明）"))
    [title] = book.sheetnames
    assert len(title) <= 31 and not set("[]:*?/\\") & set(title)


def test_xlsx_of_100k_rows_is_complete():
    count = 100_000
    rows = ([f"OL-{n:06d}", f"买家{n}", Decimal(n) / 100, PLACED + timedelta(minutes=n), "=cmd|' /C calc'!A0"]
            for n in range(count))
    data = xlsx_bytes(HEADERS, rows)  # its speed is a benchmark's business, not an assertion's
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml").decode("utf-8")
    assert len(re.findall(r"<row ", sheet_xml)) == count + 1
    assert "<f>" not in sheet_xml  # not one formula made it in
    assert f"OL-{count - 1:06d}" in sheet_xml


@pytest.mark.parametrize("write", [csv_bytes, xlsx_bytes])
def test_headers_only(write):
    assert write(HEADERS, [])
