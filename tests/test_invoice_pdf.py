"""Invoice PDFs (issue 12 item 6): real PDFs rendered with the shipped fonts, read back with pypdf.

How the "never tofu" check works: WeasyPrint writes every font as a Type0 font with Identity-H encoding, so each
two bytes of a text-showing operator (Tj/TJ/'/") in a content stream are a glyph id in the embedded font. We walk
the page's content stream (and any form XObjects), collect the glyph ids shown in each font, and check that
(1) none is 0 (.notdef, the tofu box), (2) each one exists in the embedded font program (read with fontTools from
FontFile2/FontFile3) and has an outline (glyf contours or a CFF charstring with a bounding box), except the space,
and (3) every font embedded is one of the shipped "Orderloom Invoice" faces, so no character was quietly drawn
from a system font. The text itself comes back through the fonts' ToUnicode maps (pypdf's extract_text).
"""
import io
import multiprocessing
from datetime import date
from decimal import Decimal as D

import pytest
from fontTools.ttLib import TTFont
from pypdf import PdfReader
from pypdf.generic import ContentStream

from shared.finance import invoice_pdf
from shared.finance.invoice_pdf import InvoicePdfError, PdfInvoice, PdfLine, PdfParty

NUMBER = "26332000000123456789"
SELLER = PdfParty("杭州织机科技有限公司", "91330106MA2CFXYW0A", "杭州市西湖区文三路90号 0571-88886666",
                  "招商银行杭州分行 571900123410201")
BUYER = PdfParty("吉𠮷商贸（䶮）有限公司", "N1310000MA1FL8XQ3T", "上海市浦东新区世纪大道100号 021-50001234",
                 "中国工商银行上海分行 1001234509000012345")


def invoice(**changes) -> PdfInvoice:
    fields = dict(number=NUMBER, issued_on=date(2026, 12, 3), kind="special", seller=SELLER, buyer=BUYER,
                  lines=[PdfLine("*日用杂品*不锈钢保温杯", "500ml", "个", D("2"), D("100.00"), D("200.00"), "13%",
                                 D("26.00"))],
                  total_amount=D("200.00"), total_tax=D("26.00"), total_gross=D("226.00"),
                  total_in_words="贰佰贰拾陆圆整", remarks="订单号 OL2026120300017", issuer="王芳",
                  qr_payload=f"01,32,,{NUMBER},226.00,20261203,,")
    fields.update(changes)
    return PdfInvoice(**fields)


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def to_unicode(font) -> dict[int, str]:
    """The font's ToUnicode CMap (bfchar and bfrange entries, as WeasyPrint writes them): glyph id -> text."""
    import re

    data = font["/ToUnicode"].get_object().get_data().decode("latin-1")
    mapping = {}

    def text(hexes):
        raw = bytes.fromhex(hexes)
        return raw.decode("utf-16-be")

    for block in re.findall(r"beginbfchar(.*?)endbfchar", data, re.S):
        for source, target in re.findall(r"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>", block):
            mapping[int(source, 16)] = text(target)
    for block in re.findall(r"beginbfrange(.*?)endbfrange", data, re.S):
        for first, last, target in re.findall(r"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>", block):
            start = int(target, 16)
            for offset, gid in enumerate(range(int(first, 16), int(last, 16) + 1)):
                mapping[gid] = chr(start + offset)
    return mapping


def code_to_gid(font) -> dict[int, int] | None:
    """None for Identity-H (code = glyph id). WeasyPrint writes its own encoding CMap when a font lacks a character
    it was asked for: the missing ones map to CID 0, .notdef (CIDToGIDMap is /Identity: CID = glyph id)."""
    import re

    encoding = font["/Encoding"]
    if encoding == "/Identity-H":
        return None
    data = encoding.get_object().get_data().decode("latin-1")
    return {int(code, 16): int(cid) for block in re.findall(r"begincidchar(.*?)endcidchar", data, re.S)
            for code, cid in re.findall(r"<([0-9a-fA-F]+)>\s*(\d+)", block)}


def _shown_glyphs(reader, content, resources, found, drawn):
    fonts = resources.get("/Font", {})
    current = None
    for operands, operator in ContentStream(content, reader).operations:
        if operator == b"Tf":
            current = fonts[operands[0]].get_object()
            if id(current) not in found:
                found[id(current)] = (current, set(), to_unicode(current), code_to_gid(current))
        elif operator in (b"Tj", b"TJ", b"'", b'"'):
            strings = operands[0] if operator == b"TJ" else [operands[-1]]
            for item in strings:
                if isinstance(item, (str, bytes)):
                    raw = item.original_bytes if hasattr(item, "original_bytes") else bytes(item)
                    codes = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
                    _, gids, text, encoding = found[id(current)]
                    gids.update(codes if encoding is None else (encoding.get(code, 0) for code in codes))
                    drawn.append("".join(text.get(code, "\ufffd") for code in codes))
        elif operator in (b"ET",):
            drawn.append("\n")
    for xobject in resources.get("/XObject", {}).values():
        xobject = xobject.get_object()
        if xobject.get("/Subtype") == "/Form":
            _shown_glyphs(reader, xobject, xobject.get("/Resources", resources), found, drawn)


def drawn_text(pdf: bytes) -> str:
    """The text as drawn, in content-stream order, each glyph id read back through its own font's ToUnicode map
    (independent of pypdf's text extraction, which misreads a two-byte font whose map starts at <0001>)."""
    reader = PdfReader(io.BytesIO(pdf))
    drawn = []
    for page in reader.pages:
        _shown_glyphs(reader, page.get_contents(), page["/Resources"], {}, drawn)
    return "".join(drawn)


def glyph_report(pdf: bytes) -> dict:
    """{embedded font name: (glyph ids shown, glyph ids without an outline)} for every font used."""
    reader = PdfReader(io.BytesIO(pdf))
    found = {}
    for page in reader.pages:
        _shown_glyphs(reader, page.get_contents(), page["/Resources"], found, [])
    report = {}
    for font, gids, _, _ in found.values():
        descendant = font["/DescendantFonts"][0].get_object()
        descriptor = descendant["/FontDescriptor"]
        program = (descriptor.get("/FontFile2") or descriptor.get("/FontFile3")).get_object().get_data()
        face = TTFont(io.BytesIO(program))
        order = face.getGlyphOrder()
        empty = set()
        for gid in gids:
            assert gid < len(order), (font["/BaseFont"], gid)
            if "glyf" in face:
                glyph = face["glyf"][order[gid]]
                outlined = glyph.numberOfContours != 0
            else:
                top = face["CFF "].cff.topDictIndex[0]
                charstring = top.CharStrings[order[gid]]
                outlined = charstring.calcBounds(top.CharStrings) is not None
            if not outlined:
                empty.add(gid)
        report[str(font["/BaseFont"])] = (gids, empty)
    return report


def assert_no_tofu(pdf: bytes) -> dict:
    report = glyph_report(pdf)
    assert report
    for name, (gids, empty) in report.items():
        assert "Orderloom-Invoice" in name, f"{name}: a font that is not shipped was used"
        assert 0 not in gids, f"{name}: .notdef drawn"
        assert len(empty) <= 1, f"{name}: glyphs without outline {empty}"  # the space, at most
    return report


def test_special_invoice_prints_every_field_with_the_shipped_fonts():
    pdf = invoice_pdf.render(invoice())
    assert pdf.startswith(b"%PDF-") and len(PdfReader(io.BytesIO(pdf)).pages) == 1
    text = text_of(pdf)
    for expected in ("电子发票（增值税专用发票）", "发票号码：", NUMBER, "开票日期：", "2026年12月03日",
                     "购", "销", "名称：", "统一社会信用代码/纳税人识别号：", "吉𠮷商贸（䶮）有限公司",
                     "N1310000MA1FL8XQ3T", "杭州织机科技有限公司", "91330106MA2CFXYW0A", "项目名称", "规格型号", "单位",
                     "数量", "单价", "金额", "税率/征收率", "税额", "*日用杂品*不锈钢保温杯", "500ml", "200.00", "13%",
                     "26.00", "¥200.00", "¥26.00", "价税合计（大写）", "贰佰贰拾陆圆整", "（小写）", "¥226.00",
                     "订单号 OL2026120300017", "开票人：", "王芳", "招商银行杭州分行 571900123410201"):
        assert expected in text, expected
    assert "吉𠮷商贸（䶮）有限公司" in drawn_text(pdf)
    assert "红字" not in text and "预览" not in text
    report = assert_no_tofu(pdf)
    # 䶮 comes from the Extension A face and 𠮷 from the Extension B face: the fallback is what drew them
    assert any("Han-A" in name for name in report) and any("Han-B" in name for name in report), report


def test_rare_characters_and_common_text_never_tofu():
    rare = "𠮷野家 䶮 𡈼 㐀 丂 曌 龘 喆 堃 犇 淼 鑫 垚 昇"
    lines = [PdfLine(f"*餐饮服务*{rare}", "", "次", D("1"), D("10.00"), D("10.00"), "6%", D("0.60"))]
    pdf = invoice_pdf.render(invoice(kind="normal", lines=lines, total_amount=D("10.00"), total_tax=D("0.60"),
                                     total_gross=D("10.60"), total_in_words="壹拾圆陆角",
                                     buyer=PdfParty("张䶮", ""), remarks=rare))
    text, drawn = text_of(pdf), drawn_text(pdf)
    assert "电子发票（普通发票）" in text and "壹拾圆陆角" in text and "𠮷野家" in text
    assert "张䶮" in drawn and rare in drawn
    for character in rare.replace(" ", ""):
        assert drawn.count(character) >= 2, character  # the line and the remarks
    report = assert_no_tofu(pdf)
    # 曌 喆 堃 垚 昇 are GBK beyond GB 2312: the GBK face drew them; 㐀 䶮 Extension A, 𠮷 𡈼 Extension B
    assert {name.split("+")[1] for name in report} == {
        "Orderloom-Invoice-Sans-Bold", "Orderloom-Invoice-Sans", "Orderloom-Invoice-Sans-GBK",
        "Orderloom-Invoice-Han-A-Medium", "Orderloom-Invoice-Han-B-Medium"}, report.keys()


def test_every_capital_and_gb2312_sample_has_a_glyph():
    words = "零壹贰叁肆伍陆柒捌玖拾佰仟万亿圆角分整"
    lines = [PdfLine("*信息技术服务*软件开发与维护服务费（年度）", "V2.0", "项", D("1"), D("1000000.00"),
                     D("1000000.00"), "免税", D("0.00"))]
    pdf = invoice_pdf.render(invoice(lines=lines, total_amount=D("1000000.00"), total_tax=D("0.00"),
                                     total_gross=D("1000000.00"), total_in_words="壹佰万圆整", remarks=words))
    text = text_of(pdf)
    assert words in text and "免税" in text and "1000000.00" in text and "壹佰万圆整" in text
    assert_no_tofu(pdf)


def test_a_name_with_markup_prints_as_text():
    name = '<script>alert("x")</script>&<b>甲</b>'
    pdf = invoice_pdf.render(invoice(buyer=PdfParty(name, "91310000MA1FL8XQ3Y"), remarks="<i>备注</i>"))
    text = text_of(pdf)
    assert '<script>alert("x")</script>&<b>甲</b>' in text and "<i>备注</i>" in text
    html = invoice_pdf.html(invoice(buyer=PdfParty(name, "91310000MA1FL8XQ3Y")))
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_red_invoice_is_marked_and_names_the_original():
    lines = [PdfLine("*日用杂品*不锈钢保温杯", "500ml", "个", D("-2"), D("100.00"), D("-200.00"), "13%", D("-26.00"))]
    pdf = invoice_pdf.render(invoice(number="26332000000123459999", red=True, original_number=NUMBER, lines=lines,
                                     total_amount=D("-200.00"), total_tax=D("-26.00"), total_gross=D("-226.00"),
                                     total_in_words="贰佰贰拾陆圆整", remarks="销货退回"))
    text = text_of(pdf)
    for expected in ("红字", "被红冲蓝字数电发票号码：", NUMBER, "26332000000123459999", "-200.00", "-26.00",
                     "¥-226.00", "（负数）贰佰贰拾陆圆整", "销货退回"):
        assert expected in text, expected
    assert_no_tofu(pdf)


def test_multi_line_invoice_with_a_discount_line_and_shipping():
    lines = [PdfLine("*日用杂品*不锈钢保温杯", "500ml", "个", D("3"), D("88.495575"), D("265.49"), "13%", D("34.51")),
             PdfLine("*日用杂品*不锈钢保温杯", "", "", None, None, D("-17.70"), "13%", D("-2.30")),
             PdfLine("*谷物*东北大米", "5kg", "袋", D("1.5"), D("45.871560"), D("68.81"), "9%", D("6.19")),
             PdfLine("*图书*现代汉语词典", "第7版", "本", D("1"), D("50.00"), D("50.00"), "免税", D("0.00")),
             PdfLine("*物流辅助服务*收派服务", "", "次", D("1"), D("7.55"), D("7.55"), "6%", D("0.45"))]
    amount, tax = sum(line.amount for line in lines), sum(line.tax for line in lines)
    pdf = invoice_pdf.render(invoice(lines=lines, total_amount=amount, total_tax=tax, total_gross=amount + tax,
                                     total_in_words="肆佰伍拾叁圆整"))
    text = text_of(pdf)
    assert (amount, tax, amount + tax) == (D("374.15"), D("38.85"), D("413.00"))
    for expected in ("88.495575", "265.49", "-17.70", "-2.30", "1.5", "45.87156", "9%", "免税", "*图书*现代汉语词典",
                     "*物流辅助服务*收派服务", "6%", "¥374.15", "¥38.85", "¥413.00"):
        assert expected in text, expected
    assert text.count("*日用杂品*不锈钢保温杯") == 2  # the discount line carries the discounted line's name
    assert_no_tofu(pdf)


def test_a_preview_has_no_number_and_says_so():
    text = text_of(invoice_pdf.render(invoice(number=None)))
    assert "（预览）" in text and "预览（未开具，不作报销凭证）" in text and NUMBER not in text.replace(
        f"01,32,,{NUMBER}", "")


@pytest.mark.parametrize("changes, field", [
    ({"number": "2633200000012345678"}, "number"),  # 19 digits
    ({"number": "2633200000012345678X"}, "number"),
    ({"kind": "vat"}, "kind"),
    ({"red": True}, "original_number"),
    ({"lines": []}, "lines"),
    ({"total_tax": D("25.00"), "total_gross": D("225.00")}, "total_amount/total_tax"),
    ({"total_gross": D("226.01")}, "total_gross"),
    ({"lines": [PdfLine("*a*b", "", "", None, None, D("200.00"), "13", D("26.00"))]}, "lines[1].rate"),
])
def test_an_invoice_that_cannot_be_printed_is_refused_with_the_field(changes, field):
    with pytest.raises(InvoicePdfError) as refused:
        invoice_pdf.render(invoice(**changes))
    assert str(refused.value).startswith(field)


def test_the_job_renders_from_plain_data_and_refuses_bad_data():
    from jobs.invoice_pdf import render_invoice_pdf

    data = {"number": NUMBER, "issued_on": "2026-12-03", "kind": "normal",
            "seller": {"name": SELLER.name, "tax_id": SELLER.tax_id},
            "buyer": {"name": "个人", "tax_id": "", "address_phone": "", "bank_account": ""},
            "lines": [{"name": "*乳制品*纯牛奶", "spec": "250ml*12", "unit": "箱", "quantity": "1",
                       "unit_price": "53.10", "amount": "53.10", "rate": "13%", "tax": "6.90"}],
            "total_amount": "53.10", "total_tax": "6.90", "total_gross": "60.00", "total_in_words": "陆拾圆整",
            "issuer": "王芳", "qr_payload": "x"}
    size = render_invoice_pdf(data)
    assert size > 10_000
    with pytest.raises(InvoicePdfError, match="issued_on"):
        render_invoice_pdf({**data, "issued_on": "2026-13-40"})
    with pytest.raises(InvoicePdfError):
        render_invoice_pdf({k: v for k, v in data.items() if k != "lines"})


def _render_in_child(queue):
    queue.put(len(invoice_pdf.render(invoice())))


def test_warm_state_is_loaded_once_and_serves_a_forked_work_horse():
    invoice_pdf.warm_up()
    warm = invoice_pdf._warm()
    invoice_pdf.render(invoice())
    assert invoice_pdf._warm() is warm  # the same FontConfiguration and stylesheet, render after render
    context = multiprocessing.get_context("fork")  # RQ's Worker forks a work horse per job, as here
    queue = context.Queue()
    child = context.Process(target=_render_in_child, args=(queue,))
    child.start()
    size = queue.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0 and size > 10_000


def test_shipped_fonts_are_renamed_subsets_with_licences():
    from pathlib import Path

    fonts = Path(invoice_pdf.FONT_DIR)
    for name in ("OFL.txt", "SOURCES.md"):
        assert (fonts / name).is_file()
    families = set()
    for path in sorted(fonts.glob("OrderloomInvoice*")):
        face = TTFont(path, lazy=True)
        families.add(face["name"].getDebugName(1))
        assert "Noto" not in face["name"].getDebugName(4) and "Hana" not in face["name"].getDebugName(4)
    assert families == set(invoice_pdf.FONT_FAMILIES)
    regular = TTFont(fonts / "OrderloomInvoiceSans-Regular.otf", lazy=True).getBestCmap()
    gb2312 = {ord(bytes((row, cell)).decode("gb2312")) for row in range(0xB0, 0xF8) for cell in range(0xA1, 0xFF)
              if not (row == 0xD7 and cell > 0xF9)}
    assert len(gb2312) == 6763 and gb2312 <= set(regular)
    assert 0x4DAE in TTFont(fonts / "OrderloomInvoiceHanA-Regular.ttf", lazy=True).getBestCmap()
    assert 0x20BB7 in TTFont(fonts / "OrderloomInvoiceHanB-Regular.ttf", lazy=True).getBestCmap()


JOB_DATA = {"number": NUMBER, "issued_on": "2026-12-03", "kind": "special",
            "seller": {"name": SELLER.name, "tax_id": SELLER.tax_id},
            "buyer": {"name": BUYER.name, "tax_id": BUYER.tax_id},
            "lines": [{"name": "*日用杂品*不锈钢保温杯", "spec": "500ml", "unit": "个", "quantity": "2",
                       "unit_price": "100.00", "amount": "200.00", "rate": "13%", "tax": "26.00"}],
            "total_amount": "200.00", "total_tax": "26.00", "total_gross": "226.00",
            "total_in_words": "贰佰贰拾陆圆整", "issuer": "王芳", "qr_payload": "x"}


@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)
def test_a_real_forking_worker_warms_up_and_renders_invoice_jobs(live_apps):
    """`orderloom worker --burst` (RQ's forking Worker): the fonts load before the fork, each job renders."""
    from rq import Queue
    from rq.job import Job

    from tests.test_worker import _redis, _run_worker

    redis = _redis()
    redis.flushdb()
    documents = Queue("documents", connection=redis)
    jobs = [documents.enqueue("jobs.invoice_pdf.render_invoice_pdf", JOB_DATA) for _ in range(2)]
    bad = documents.enqueue("jobs.invoice_pdf.render_invoice_pdf", {**JOB_DATA, "total_gross": "1.00"})

    finished = _run_worker(live_apps.url)

    assert finished.returncode == 0, finished.stderr
    assert "invoice PDF fonts loaded in" in finished.stderr + finished.stdout
    assert "fonts not loaded" not in finished.stderr
    sizes = [Job.fetch(made.id, connection=redis).return_value() for made in jobs]
    assert all(size > 10_000 for size in sizes) and sizes[0] == sizes[1]
    failed = Job.fetch(bad.id, connection=redis)
    assert failed.is_failed and "total_gross" in (failed.latest_result().exc_string or "")


def test_a_font_problem_at_worker_start_is_logged_and_the_worker_goes_on(monkeypatch, caplog):
    from jobs import worker

    def broken():
        raise OSError("static/fonts/OrderloomInvoiceSans-Regular.otf: no such file")

    monkeypatch.setattr(invoice_pdf, "warm_up", broken)
    with caplog.at_level("ERROR", logger="orderloom.worker"):
        worker._warm_invoice_pdf()  # no exception: the other queues keep their worker
    assert "invoice PDF fonts not loaded" in caplog.text


def test_a_long_invoice_runs_onto_numbered_pages_with_every_line():
    lines = [PdfLine(f"*日用杂品*真空保温杯带茶漏和提手大容量户外运动款式第{n}号", "500ml", "个", D("1"), D("10.00"),
                     D("10.00"), "13%", D("1.30")) for n in range(1, 19)]
    pdf = invoice_pdf.render(invoice(lines=lines, total_amount=D("180.00"), total_tax=D("23.40"),
                                     total_gross=D("203.40"), total_in_words="贰佰零叁圆肆角"))
    pages = PdfReader(io.BytesIO(pdf)).pages
    assert len(pages) >= 2
    drawn = drawn_text(pdf)
    for n in range(1, 19):
        assert f"款式第{n}号" in drawn, n
    assert "¥203.40" in drawn and f"共 {len(pages)} 页" in text_of(pdf)
    assert_no_tofu(pdf)
