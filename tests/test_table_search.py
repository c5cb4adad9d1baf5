"""Long lists are searched and sorted on the server (issue 14 item 4): the SKU mapping list of a channel takes a
search box and sort links whose answers are the database's, not the page's; lists that show every row sort in the
browser (class "sortable")."""
import re
from pathlib import Path

from shared.extensions import db
from shared.services import catalog, channel_settings, stock
from tests.factories import ADMIN

ROOT = Path(__file__).resolve().parents[1]


def _mapped(create_channel):
    channel = create_channel()
    for code, name in (("TEA-1", "龙井茶"), ("MILK-1", "鲜牛奶"), ("RICE-1", "五常大米")):
        catalog.create_sku({"sku": code, "name": name}, ADMIN)
    for channel_sku, code in (("P-300", "TEA-1"), ("P-100", "MILK-1"), ("P-200", "RICE-1"), ("X_9%", "TEA-1")):
        channel_settings.map_sku(channel, channel_sku, code, ADMIN)
    db.session.commit()
    return channel


def rows(page: str) -> list[str]:
    return re.findall(r'<tr data-testid="sku-([^"]+)"', page)


def test_the_mapping_list_is_searched_on_the_server(client_for, create_channel):
    channel = _mapped(create_channel)
    client = client_for("admin")
    url = f"/channels/{channel.code}"
    assert 'data-testid="sku-search"' in client.get(url).text
    assert rows(client.get(url, query_string={"sku_q": "TEA"}).text) == ["P-300", "X_9%"]  # by internal SKU
    assert rows(client.get(url, query_string={"sku_q": "牛奶"}).text) == ["P-100"]  # by the SKU's name
    assert rows(client.get(url, query_string={"sku_q": "P-2"}).text) == ["P-200"]  # by the channel's SKU
    assert rows(client.get(url, query_string={"sku_q": "_9%"}).text) == ["X_9%"]  # wildcards are text
    empty = client.get(url, query_string={"sku_q": "nothing-like-it"}).text
    assert rows(empty) == [] and "No mapping matches nothing-like-it." in empty


def test_the_mapping_list_is_sorted_on_the_server(client_for, create_channel):
    channel = _mapped(create_channel)
    client = client_for("admin")
    url = f"/channels/{channel.code}"
    assert rows(client.get(url, query_string={"sku_sort": "channel_sku"}).text) == ["P-100", "P-200", "P-300", "X_9%"]
    assert rows(client.get(url, query_string={"sku_sort": "-channel_sku"}).text) == ["X_9%", "P-300", "P-200", "P-100"]
    by_sku = client.get(url, query_string={"sku_sort": "sku", "sku_q": "P-"}).text
    assert rows(by_sku) == ["P-100", "P-200", "P-300"]  # MILK-1, RICE-1, TEA-1; the search kept with the sort
    link = re.search(r'<a href="([^"]+)" data-testid="sort-sku"[^>]*aria-sort="ascending"', by_sku).group(1)
    assert "sku_sort=-sku" in link and "sku_q=P-" in link  # the next click reverses, still searching
    assert rows(client.get(url, query_string={"sku_sort": "bogus"}).text) == ["P-100", "P-200", "P-300", "X_9%"]
    assert stock.get_sku("TEA-1").name == "龙井茶"


LONG_LISTS = ("after_sales/index.html", "exceptions/index.html", "invoices/index.html", "payments.html",
              "users.html", "catalog.html", "stock/index.html", "audit/index.html", "devices.html",
              "notifications.html", "retention.html", "approvals/rules.html", "channels/tracking_inbox.html",
              "catalog_tax.html", "finance_profiles.html", "exports/index.html")


def test_long_lists_sort():
    """Every list that can run past a screen sorts: its table is marked for the click-to-sort of app.js."""
    missing = [name for name in LONG_LISTS
               if not re.search(r'<table[^>]*class="[^"]*\bsortable\b', (ROOT / "templates/portal" / name).read_text())]
    assert missing == []
    script = (ROOT / "static/js/app.js").read_text()
    assert 'querySelectorAll("table.sortable")' in script


FILTERED = ("users.html", "catalog.html", "devices.html", "approvals/rules.html")


def test_lists_that_show_every_row_have_a_search_box():
    missing = [name for name in FILTERED
               if not re.search(r'<table[^>]*data-filter="', (ROOT / "templates/portal" / name).read_text())]
    assert missing == []
    assert 'querySelectorAll("table[data-filter]")' in (ROOT / "static/js/app.js").read_text()
