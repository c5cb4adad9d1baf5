// The order list's bulk bar: "select every order on this page" ticks the page's rows, and the count of ticked rows
// follows (delegated, so rows htmx swaps in are counted too).
(function () {
  function rows() { return document.querySelectorAll("input[data-bulk-row]"); }
  function recount() {
    var ticked = 0;
    rows().forEach(function (box) { if (box.checked) { ticked += 1; } });
    document.querySelectorAll("[data-bulk-count]").forEach(function (node) { node.textContent = String(ticked); });
    var all = document.querySelector("input[data-bulk-all]");
    if (all) { all.checked = ticked > 0 && ticked === rows().length; }
  }
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("input[data-bulk-all]")) {
      rows().forEach(function (box) { box.checked = target.checked; });
      recount();
    } else if (target.matches && target.matches("input[data-bulk-row]")) {
      recount();
    }
  });
  document.addEventListener("htmx:afterSwap", recount);
  document.addEventListener("DOMContentLoaded", recount);
})();
