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
// A form marked data-confirm asks before it is sent (inline onsubmit handlers are refused by the CSP).
document.addEventListener("submit", function (event) {
  var question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) { event.preventDefault(); }
}, true);
