#!/usr/bin/env python3
"""Write portal/api_texts.py: the English texts of docs/openapi.json that the portal's API page shows translated
(portal.api_docs.catalog_texts), as msgids pybabel extracts. Run after editing docs/openapi.json, then
scripts/translations.sh; tests/test_translations.py fails while the module and the file disagree.

    .venv/bin/python scripts/api_texts.py
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "portal" / "api_texts.py"
HEADER = '''# ruff: noqa: E501  (one text per line, as long as the text)
"""The texts of docs/openapi.json that the portal's API page shows in the viewer's language (msgids for the catalog).

Written by scripts/api_texts.py from docs/openapi.json: do not edit by hand, run it again after changing the file.
"""
from shared.services.validation import N_

TEXTS = (
'''


def module_text(texts: list[str]) -> str:
    """The module's source for these texts (one N_ call per text, in order)."""
    lines = [f"    N_({json.dumps(text, ensure_ascii=False)}),\n" for text in texts]
    return HEADER + "".join(lines) + ")\n"


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from portal.api_docs import catalog_texts

    spec = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    TARGET.write_text(module_text(catalog_texts(spec)), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
