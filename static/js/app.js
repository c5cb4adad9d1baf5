// Click-to-sort for tables marked .sortable (the page's rows only; server-side sort covers long lists).
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (header, index) {
      header.classList.add("sortable-header");
      header.title = header.title || "↕";
      header.addEventListener("click", function () {
        var body = table.tBodies[0];
        var ascending = header.dataset.dir !== "asc";
        header.dataset.dir = ascending ? "asc" : "desc";
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = (a.cells[index] || {}).textContent || "", y = (b.cells[index] || {}).textContent || "";
          var nx = parseFloat(x.replace(/[^0-9.\-]/g, "")), ny = parseFloat(y.replace(/[^0-9.\-]/g, ""));
          var result = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y, document.documentElement.lang);
          return ascending ? result : -result;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
});
// htmx sends the CSRF token with every request it makes.
document.addEventListener("htmx:configRequest", function (event) {
  var token = document.querySelector("input[name=csrf_token]");
  if (token) { event.detail.headers["X-CSRFToken"] = token.value; }
});

// A form with data-confirm asks before it is sent: the text states the consequence (the policy forbids inline
// handlers, so this is the one place a confirmation is asked).
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form && form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);

// The bulk count sheet of a stock-take: Enter moves to the next line's box (the last one to "Save all"), a scan
// (SKU or barcode, then Enter) adds one to its line or, as "SKU*12", sets it, and the totals follow every key.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("count-sheet-form");
  if (!form) { return; }
  var inputs = function () {
    return Array.prototype.slice.call(document.querySelectorAll("input.count-input[form=count-sheet-form]"));
  };
  var totals = function () {
    var lines = 0, units = 0, variance = 0;
    inputs().forEach(function (input) {
      var value = input.value.trim();
      if (value === "" || !/^\d+$/.test(value)) { return; }
      lines += 1;
      units += parseInt(value, 10);
      if (input.dataset.expected !== undefined) {
        variance += Math.abs(parseInt(value, 10) - parseInt(input.dataset.expected, 10));
      }
    });
    var linesOut = document.querySelector("[data-testid=total-lines]");
    linesOut.textContent = lines + " / " + linesOut.dataset.total;
    document.querySelector("[data-testid=total-units]").textContent = String(units);
    var varianceOut = document.querySelector("[data-testid=total-variance]");
    if (varianceOut) { varianceOut.textContent = String(variance); }
  };
  document.addEventListener("input", function (event) {
    if (event.target.classList && event.target.classList.contains("count-input")) { totals(); }
  });
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.key !== "Enter" || !target.classList) { return; }
    if (target.classList.contains("count-input")) {
      event.preventDefault();  // Enter is "next line", never an accidental save of a half-typed sheet
      var all = inputs(), next = all[all.indexOf(target) + 1];
      (next || document.querySelector("[data-testid=save-counts]")).focus();
      if (next) { next.select(); }
    } else if (target.id === "count-scan") {
      event.preventDefault();
      var answer = document.getElementById("count-scan-answer");
      var scanned = target.value.trim(), parts = scanned.split("*"), code = parts[0].trim();
      var line = inputs().filter(function (input) { return input.dataset.sku === code; })[0];
      if (!code) { return; }
      if (!line) {
        answer.textContent = form.dataset.unknownScan.replace("%(code)s", code);
        answer.className = "small error";
      } else {
        var current = /^\d+$/.test(line.value.trim()) ? parseInt(line.value, 10) : 0;
        line.value = (parts.length > 1 && /^\d+$/.test(parts[1].trim())) ? parts[1].trim() : String(current + 1);
        line.closest("tr").scrollIntoView({block: "center"});
        answer.textContent = code + ": " + line.value;
        answer.className = "small ok";
        totals();
      }
      target.value = "";
    }
  });
  totals();
});

// A table that shows every row and is marked data-filter gets a search box above it: typing hides the rows that do
// not contain the text (the label is the template's, in the page's language). Paged lists search on the server.
document.addEventListener("DOMContentLoaded", function () {
  // What a row says, leaving out the choices of its controls (every row's role select lists every role).
  var shownText = function (row) {
    var copy = row.cloneNode(true);
    copy.querySelectorAll("select, button, input, textarea").forEach(function (control) { control.remove(); });
    return copy.textContent;
  };
  document.querySelectorAll("table[data-filter]").forEach(function (table, index) {
    var box = document.createElement("input");
    box.type = "search";
    box.className = "table-filter";
    box.placeholder = table.dataset.filter;
    box.setAttribute("aria-label", table.dataset.filter);
    box.setAttribute("aria-controls", table.id || (table.id = "filtered-table-" + index));
    box.setAttribute("data-testid", "filter-" + (table.getAttribute("data-testid") || index));
    table.parentNode.insertBefore(box, table);
    box.addEventListener("input", function () {
      var text = box.value.trim().toLocaleLowerCase();
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        row.hidden = text !== "" && shownText(row).toLocaleLowerCase().indexOf(text) === -1;
      });
    });
  });
});
