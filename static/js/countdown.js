// The refund countdown on a customer's after-sales request: the server renders the time left; this moves it on
// every minute from the deadline in data-deadline (ISO 8601). No inline script: the CSP forbids it.
(function () {
  function update() {
    document.querySelectorAll("[data-countdown]").forEach(function (box) {
      var deadline = Date.parse(box.dataset.deadline);
      if (isNaN(deadline)) { return; }
      var left = Math.max(0, Math.floor((deadline - Date.now()) / 60000));
      var hours = box.querySelector("[data-part=hours]"), minutes = box.querySelector("[data-part=minutes]");
      if (hours) { hours.textContent = String(Math.floor(left / 60)); }
      if (minutes) { minutes.textContent = String(left % 60); }
      if (left === 0) { box.classList.add("countdown-due"); }
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    update();
    window.setInterval(update, 60000);
  });
})();
