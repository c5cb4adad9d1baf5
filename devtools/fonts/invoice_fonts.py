"""Rebuild the invoice PDF fonts in static/fonts/ (issue 12 item 6): `python -m devtools.fonts.invoice_fonts`.

The subsets are committed; this script is only needed when the template's text or the character sets change. It
needs fontTools (pinned in pyproject's `test` extra; WeasyPrint depends on it too) and two Debian packages:
fonts-noto-cjk (Noto Sans CJK SC, SIL OFL 1.1) and fonts-hanazono (HanaMinA/HanaMinB, SIL OFL 1.1 or the Hanazono
Font Licence). Every face is renamed (OFL §3: a modified version may not keep a Reserved Font Name) to an
"Orderloom Invoice" family; static/fonts/SOURCES.md records what went in.

- Orderloom Invoice Sans Regular: Noto Sans CJK SC Regular cut to ASCII, all of GB 2312 (7,445 characters: 6,763
  hanzi and the symbols), the template's text, the capitals of 价税合计 and common invoice words.
- Orderloom Invoice Sans GBK: the same source cut to the rest of GBK (names on an invoice are GBK by rule, and
  曌 喆 堃 垚 昇 are GBK, not GB 2312). A face of its own, first fallback: folded into the regular face it made
  every render pay for its size (0.2 s → 0.5 s a warm render, PDFs 108 → 186 KB: HarfBuzz subsets the whole face).
- Orderloom Invoice Sans Bold: Noto Sans CJK SC Bold cut to the template's text, ASCII and the capitals (titles and
  labels only).
- Orderloom Invoice Han A: HanaMinA cut to CJK Extension A (U+3400–U+4DBF: the 6,582 of Unicode 3.0; HanaMinA
  predates the 10 added in Unicode 13), plus ASCII and CJK/full-width punctuation (see beside_fallback).
- Orderloom Invoice Han B: HanaMinB cut to the 2,108 Extension B characters that the regional CJK standards use
  (the set Noto Sans CJK covers, e.g. 𠮷) plus ASCII and punctuation; `--ext-b all` takes all 42,711 of
  HanaMinB's Extension B (≈ 22 MB).
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FONTS = ROOT / "static" / "fonts"
TEMPLATES = ROOT / "templates" / "invoices"
NOTO_REGULAR = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
NOTO_BOLD = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc")
NOTO_SC_INDEX = 2  # the collection's faces: JP, KR, SC, TC, HK, then the Mono ones
HANA_A = Path("/usr/share/fonts/truetype/hanazono/HanaMinA.ttf")
HANA_B = Path("/usr/share/fonts/truetype/hanazono/HanaMinB.ttf")
EXT_A = range(0x3400, 0x4DC0)
EXT_B = range(0x20000, 0x2A6E0)

CAPITALS = "零壹贰叁肆伍陆柒捌玖拾佰仟万亿圆角分整负"
INVOICE_WORDS = ("电子发票增值税专用发票普通发票红字发票号码开票日期购买方销售方信息名称统一社会信用代码纳税人识别号"
                 "地址电话开户银行账号项目名称规格型号单位数量单价金额税率征收率税额合计价税合计大写小写备注开票人"
                 "免税不征税折扣运费服务费技术服务货物销售退回开票有误服务中止销售折让对应正数发票预览下载税务局"
                 "国家税务总局个件台套箱盒瓶袋千克公斤克米次项份张本批组双支元")
SYMBOLS = "¥￥×·—–…‘’“”（）《》【】〔〕、。，：；！？％＊＋－／＝＜＞№℃§"


def gb2312() -> set[int]:
    """Every character of GB 2312 (rows 0xA1–0xF7, cells 0xA1–0xFE), decoded by Python's codec."""
    found = set()
    for row in range(0xA1, 0xF8):
        for cell in range(0xA1, 0xFF):
            try:
                found.add(ord(bytes((row, cell)).decode("gb2312")))
            except UnicodeDecodeError:
                continue
    return found


def gbk() -> set[int]:
    """Every character of GBK (lead bytes 0x81–0xFE, trail 0x40–0xFE): 21,886 characters, 21,003 of them hanzi.
    Invoice names are limited in GBK bytes (shared/finance/text_rules.py), so any name a profile accepts is GBK;
    with this set the primary face prints it, not a fallback or a system font."""
    found = set()
    for lead in range(0x81, 0xFF):
        for trail in range(0x40, 0xFF):
            try:
                found.add(ord(bytes((lead, trail)).decode("gbk")))
            except UnicodeDecodeError:
                continue
    return found


def template_text() -> set[int]:
    paths = sorted([*TEMPLATES.glob("*.html"), *TEMPLATES.glob("*.css")])
    return {ord(c) for path in paths for c in path.read_text("utf-8") if ord(c) >= 0x80}


def regular_set() -> set[int]:
    return (set(range(0x20, 0x7F)) | gb2312() | template_text() | {ord(c) for c in CAPITALS + INVOICE_WORDS + SYMBOLS})


def gbk_set() -> set[int]:
    """The GBK characters beyond the regular face, with ASCII and punctuation (beside_fallback)."""
    return (gbk() - regular_set()) | beside_fallback()


def bold_set() -> set[int]:
    return set(range(0x20, 0x7F)) | template_text() | {ord(c) for c in CAPITALS + SYMBOLS}


def beside_fallback() -> set[int]:
    """What a fallback face needs beside its own block: Pango keeps a space or a punctuation mark next to a rare
    character in the rare character's face, and a face without it draws .notdef there."""
    return set(range(0x20, 0x7F)) | set(range(0x3000, 0x3040)) | set(range(0xFF00, 0xFF66))


def ext_b_in_use() -> set[int]:
    from fontTools.ttLib import TTFont

    cmap = TTFont(NOTO_REGULAR, fontNumber=NOTO_SC_INDEX, lazy=True).getBestCmap()
    return {cp for cp in cmap if cp in EXT_B}


def rename(font, family: str, style: str) -> None:
    """New names in the name table (and the CFF font name): the subsets are modified versions under the OFL."""
    postscript = f"{family.replace(' ', '')}-{style}"
    names = font["name"]
    names.names = [n for n in names.names if n.nameID not in (1, 2, 3, 4, 6, 16, 17, 21, 22)]
    for name_id, value in ((1, family), (2, style), (3, f"{postscript};orderloom-subset"),
                           (4, f"{family} {style}" if style != "Regular" else family), (6, postscript)):
        names.setName(value, name_id, 3, 1, 0x409)
        names.setName(value, name_id, 1, 0, 0)
    if "CFF " in font:
        font["CFF "].cff.fontNames = [postscript]


def subset_font(source: Path, index: int | None, unicodes: set[int], target: Path, family: str, style: str) -> dict:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.hinting = False
    options.notdef_outline = True
    options.desubroutinize = False
    options.drop_tables += ["FFTM", "DSIG"]
    font = TTFont(source, fontNumber=index) if index is not None else TTFont(source)
    available = set(font.getBestCmap())
    wanted = unicodes & available
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=wanted)
    subsetter.subset(font)
    rename(font, family, style)
    font.save(target)
    return {"file": target.name, "characters": len(wanted), "missing": sorted(unicodes - available),
            "bytes": target.stat().st_size}


def build(ext_b: str = "in-use", only: tuple[str, ...] = ()) -> list[dict]:
    FONTS.mkdir(parents=True, exist_ok=True)
    jobs = {
        "sans-regular": (NOTO_REGULAR, NOTO_SC_INDEX, regular_set, "OrderloomInvoiceSans-Regular.otf",
                         "Orderloom Invoice Sans", "Regular"),
        "sans-bold": (NOTO_BOLD, NOTO_SC_INDEX, bold_set, "OrderloomInvoiceSans-Bold.otf",
                      "Orderloom Invoice Sans", "Bold"),
        "sans-gbk": (NOTO_REGULAR, NOTO_SC_INDEX, gbk_set, "OrderloomInvoiceSansGBK-Regular.otf",
                     "Orderloom Invoice Sans GBK", "Regular"),
        "han-a": (HANA_A, None, lambda: set(EXT_A) | beside_fallback(), "OrderloomInvoiceHanA-Regular.ttf",
                  "Orderloom Invoice Han A", "Regular"),
        "han-b": (HANA_B, None, lambda: (set(EXT_B) if ext_b == "all" else ext_b_in_use()) | beside_fallback(),
                  "OrderloomInvoiceHanB-Regular.ttf", "Orderloom Invoice Han B", "Regular"),
    }
    done = []
    for key, (source, index, characters, name, family, style) in jobs.items():
        if only and key not in only:
            continue
        if not source.exists():
            raise SystemExit(f"{source} is missing: apt-get install fonts-noto-cjk fonts-hanazono")
        row = subset_font(source, index, characters(), FONTS / name, family, style)
        print(f"{row['file']}: {row['characters']} characters, {row['bytes']:,} bytes"
              + (f", {len(row['missing'])} not in the source" if row["missing"] else ""), file=sys.stderr)
        done.append(row)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ext-b", choices=("in-use", "all"), default="in-use")
    parser.add_argument("--only", action="append", choices=("sans-regular", "sans-bold", "sans-gbk", "han-a", "han-b"),
                        default=[])
    args = parser.parse_args(argv)
    build(args.ext_b, tuple(args.only))
    return 0


if __name__ == "__main__":
    sys.exit(main())
