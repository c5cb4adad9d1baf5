"""The Chinese catalog covers every UI string, the compiled .mo is the .po, and placeholders survive translation.

When one of these fails after a code change, run scripts/translations.sh, translate what it lists in
translations/zh_Hans_CN/LC_MESSAGES/messages.po, run it again, and commit the .po and the .mo together.
"""
import re
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask_babel import force_locale
from markupsafe import escape

from shared.appcore import LANGUAGES
from shared.labels import CUSTOMER_STATUS, STATUS, label

ROOT = Path(__file__).resolve().parents[1]
# Folder names as Babel spells the locale: Flask-Babel loads the app's "zh_CN" from translations/zh_Hans_CN.
LOCALES = ("zh_Hans_CN",)
# The keywords scripts/translations.sh passes with -k, on top of Babel's defaults (_, gettext, ngettext, ...).
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None, "lazy_ngettext": (1, 2),
            "lazy_pgettext": ((1, "c"), 2)}

# One printf-style conversion: %(name)s, %s, %5.2f, %% ...
PLACEHOLDER = re.compile(
    r"%(?:\((?P<name>[^)]*)\))?[#0 +\-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?(?P<type>[diouxXeEfFgGcrsa%])")


def po_path(locale: str) -> Path:
    return ROOT / "translations" / locale / "LC_MESSAGES" / "messages.po"


def load_po(locale: str):
    with po_path(locale).open("rb") as f:
        return read_po(f, locale=locale)


def strings(value) -> tuple:
    """A message's id or string as a tuple: one element, or the singular and plural forms."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def source_messages() -> dict:
    """{(msgid, context): ["file:line", ...]} for every translatable string in the tree, as babel.cfg maps it."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f, filename=str(ROOT / "babel.cfg"))
    found: dict = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS):
        msgid = strings(message)[0]
        if msgid:
            found.setdefault((msgid, context), []).append(f"{filename}:{lineno}")
    return found


def placeholders(text: str) -> tuple[set, list, str]:
    """Named conversions, positional conversions in order, and whatever '%' is left that is none of them."""
    named = {(m["name"], m["type"]) for m in PLACEHOLDER.finditer(text) if m["name"] is not None}
    positional = [m["type"] for m in PLACEHOLDER.finditer(text) if m["name"] is None and m["type"] != "%"]
    stray = PLACEHOLDER.sub("", text)
    return named, positional, stray


@pytest.fixture(scope="module")
def extracted():
    return source_messages()


def test_babel_cfg_reaches_the_portal_the_customer_site_and_the_templates(extracted):
    files = {where.rsplit(":", 1)[0] for wheres in extracted.values() for where in wheres}
    for folder in ("portal/", "customer_site/", "shared/", "templates/portal/", "templates/customer/"):
        assert any(f.startswith(folder) for f in files), f"nothing extracted from {folder}: check babel.cfg"
    assert not any(f.startswith((".venv/", "tests/")) for f in files)


def test_every_offered_language_but_english_has_a_catalog_where_flask_babel_looks():
    for code in LANGUAGES:
        if code != "en":  # English is the msgids themselves
            folder = str(Locale.parse(code))  # what Flask-Babel asks gettext for: zh_CN -> zh_Hans_CN
            assert folder in LOCALES
            assert (ROOT / "translations" / folder / "LC_MESSAGES" / "messages.mo").is_file()


@pytest.mark.parametrize("locale", LOCALES)
def test_every_string_in_the_source_has_a_reviewed_translation(locale, extracted):
    catalog = load_po(locale)
    problems = []
    for (msgid, context), wheres in sorted(extracted.items(), key=lambda item: item[0][0]):
        message = catalog.get(msgid, context)
        if message is None:
            problems.append(f"missing   {msgid!r}  ({wheres[0]})")
        elif message.fuzzy:
            problems.append(f"fuzzy     {msgid!r}  ({wheres[0]})")
        elif not all(s.strip() for s in strings(message.string)):
            problems.append(f"empty     {msgid!r}  ({wheres[0]})")
    assert not problems, (f"{len(problems)} string(s) lack a {locale} translation; run scripts/translations.sh "
                          "and translate them:\n" + "\n".join(problems))


@pytest.mark.parametrize("locale", LOCALES)
def test_the_catalog_has_no_untranslated_or_fuzzy_entries(locale):
    catalog = load_po(locale)
    assert not catalog.fuzzy, "the catalog header is marked fuzzy, so pybabel compile would skip it"
    assert [m.id for m in catalog if m.id and (m.fuzzy or not all(strings(m.string)))] == []


@pytest.mark.parametrize("locale", LOCALES)
def test_the_compiled_mo_holds_exactly_what_the_po_says(locale):
    po = load_po(locale)
    with po_path(locale).with_suffix(".mo").open("rb") as f:
        mo = read_mo(f)
    def key(m):  # a plural message's id is a tuple in a .po and a list in a .mo
        return (tuple(m.id) if isinstance(m.id, (list, tuple)) else m.id), m.context

    def text(m):
        return tuple(m.string) if isinstance(m.string, (list, tuple)) else m.string

    expected = {key(m): text(m) for m in po if m.id and not m.fuzzy and all(strings(m.string))}
    compiled = {key(m): text(m) for m in mo if m.id}
    stale = {key for key in expected.keys() | compiled.keys() if expected.get(key) != compiled.get(key)}
    assert not stale, (f"messages.mo is out of date with messages.po for {len(stale)} message(s), e.g. "
                       f"{sorted(map(str, stale))[:5]}; run scripts/translations.sh")
    assert mo.plural_forms == po.plural_forms


@pytest.mark.parametrize("locale", LOCALES)
def test_translations_keep_the_placeholders_of_their_msgid(locale):
    catalog = load_po(locale)
    problems = [f"{message.id!r}: {error}" for message, errors in catalog.check() for error in errors]
    for message in catalog:
        if not message.id or not message.string:
            continue
        ids, translations = strings(message.id), strings(message.string)
        named, positional, _ = placeholders(ids[0])
        for plural_id in ids[1:]:  # a plural may drop a count it spells out, never add one
            named |= placeholders(plural_id)[0]
        for text in translations:
            t_named, t_positional, t_stray = placeholders(text)
            if t_named != named or t_positional != positional:
                problems.append(f"{message.id!r} -> {text!r}: placeholders {sorted(t_named)} {t_positional}, "
                                f"expected {sorted(named)} {positional}")
            # Templates format every _() result with %, so a lone % in a translation breaks the page.
            if "%" in t_stray:
                problems.append(f"{message.id!r} -> {text!r}: a lone '%' (write '%%')")
    assert not problems, "\n".join(problems)


def test_the_portal_sign_in_page_speaks_the_language_asked_for(portal):
    client = portal.test_client()
    chinese = client.get("/sign-in?lang=zh_CN").get_data(as_text=True)
    assert "员工登录" in chinese and "用户名" in chinese and "密码" in chinese
    assert "Staff sign-in" not in chinese
    english = client.get("/sign-in?lang=en").get_data(as_text=True)
    assert "Staff sign-in" in english and "员工登录" not in english


def test_status_words_are_translated_for_staff_and_for_customers(customer_app):
    with customer_app.test_request_context("/"), force_locale("zh_CN"):
        assert label(STATUS, "pending_review") == "待审核"
        assert label(CUSTOMER_STATUS, "shipped") == "运输中"
        assert label(CUSTOMER_STATUS, "completed") == "已签收"


def test_the_api_page_texts_are_the_catalog_msgids_of_openapi_json():
    """What the API page shows translated (summaries, tag titles, shared answers) is in portal/api_texts.py exactly
    as docs/openapi.json has it now, so the catalog checks above cover it; run scripts/api_texts.py when not."""
    import importlib.util
    import json

    from portal import api_texts
    from portal.api_docs import catalog_texts

    spec = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    expected = catalog_texts(spec)
    assert list(api_texts.TEXTS) == expected, "portal/api_texts.py is stale: run scripts/api_texts.py"
    loader = importlib.util.spec_from_file_location("api_texts_script", ROOT / "scripts" / "api_texts.py")
    script = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(script)
    assert (ROOT / "portal" / "api_texts.py").read_text(encoding="utf-8") == script.module_text(expected)
    summaries = {operation["summary"] for item in spec["paths"].values() for operation in item.values()}
    assert summaries <= set(expected)


def test_the_api_page_shows_each_summary_in_chinese(portal):
    from portal.api_docs import specification

    catalog = load_po(LOCALES[0])
    page = portal.test_client().get("/api-docs?lang=zh_CN").get_data(as_text=True)
    for item in specification()["paths"].values():
        for operation in item.values():
            message = catalog.get(operation["summary"])
            if message is not None and message.string:  # a missing one is reported by the test above
                assert escape(message.string) in page
                assert f'data-testid="api-summary">{escape(operation["summary"])}<' not in page
