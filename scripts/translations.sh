#!/usr/bin/env bash
# Refresh the UI translations: extract every msgid from the sources (babel.cfg
# says where), merge them into each language's .po, and compile the .mo files
# that Flask-Babel loads. Run from anywhere:  scripts/translations.sh
#
# New or changed strings come out untranslated (or "fuzzy" when Babel guessed
# from a similar old string): translate them in
# translations/<lang>/LC_MESSAGES/messages.po, run this again, and commit both
# the .po and the .mo. tests/test_translations.py fails until every msgid has a
# reviewed (non-fuzzy) translation and the .mo matches the .po.
set -euo pipefail

cd "$(dirname "$0")/.."
PYBABEL="${PYBABEL:-.venv/bin/pybabel}"
[ -x "$PYBABEL" ] || PYBABEL=pybabel
# Catalog folders are named the way Babel spells the locale, not the way the app
# does: Flask-Babel looks a locale up through babel.Locale.parse("zh_CN"), which
# is zh_Hans_CN, so a translations/zh_CN/ folder would never be loaded.
LOCALES="${LOCALES:-zh_Hans_CN}"
POT=translations/messages.pot

# -k: Babel knows _, gettext, ngettext, pgettext... but not Flask-Babel's lazy
# names. Keep this list in step with KEYWORDS in tests/test_translations.py.
"$PYBABEL" --quiet extract -F babel.cfg \
    -k _l -k lazy_gettext -k lazy_ngettext:1,2 -k lazy_pgettext:1c,2 \
    --add-comments=Translators: --strip-comment-tags \
    --sort-output --add-location=file --width=100 \
    --project=Orderloom --version=0.1.0 --copyright-holder=Orderloom \
    -o "$POT" .
# Keep the template stable between runs: the creation date changes every time.
sed -i '/^"POT-Creation-Date: /d' "$POT"

for locale in $LOCALES; do
    po="translations/$locale/LC_MESSAGES/messages.po"
    if [ -f "$po" ]; then
        "$PYBABEL" --quiet update -i "$POT" -d translations -l "$locale" \
            --ignore-obsolete --ignore-pot-creation-date --width=100
    else
        "$PYBABEL" --quiet init -i "$POT" -d translations -l "$locale" --width=100
    fi
done

"$PYBABEL" compile -d translations --statistics

# Say plainly what still needs a translator.
"${PYTHON:-.venv/bin/python}" - "$LOCALES" <<'PY' || true
import sys
from babel.messages.pofile import read_po
for locale in sys.argv[1].split():
    with open(f"translations/{locale}/LC_MESSAGES/messages.po", "rb") as f:
        catalog = read_po(f)
    todo = [m.id for m in catalog if m.id and (not m.string or m.fuzzy)]
    if todo:
        print(f"{locale}: {len(todo)} message(s) need a translation or review:")
        for msgid in todo:
            print("   ", msgid if isinstance(msgid, str) else msgid[0])
PY
