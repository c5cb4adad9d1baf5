// The API page's try-it forms: each call goes to the API with a short-lived bearer token of the signed-in user,
// asked of the portal (session + CSRF) on the first call and revoked when the page is left. Answers are shown as
// text (textContent), never as markup.
(function () {
  "use strict";
  var bar, token = null, expires = 0;

  function say(name, time) {
    return (bar.dataset["msg" + name] || "").replace("{time}", time || "");
  }

  function state(text) {
    bar.querySelector(".try-token-state").textContent = text;
  }

  function askToken() {
    if (token && Date.now() < expires - 15000) { return Promise.resolve(token); }
    return fetch(bar.dataset.tokenUrl, {
      method: "POST", credentials: "same-origin",
      headers: {"X-CSRFToken": bar.dataset.csrf, "Accept": "application/json"}
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) {
          var message = (body.error && body.error.message) || response.status;
          throw new Error(say("Failed") + " " + message);
        }
        token = body.token;
        expires = Date.now() + body.minutes * 60000;
        state(say("Active", body.expires_local));
        bar.querySelector("[data-end]").hidden = false;
        return token;
      });
    });
  }

  function endToken(leaving) {
    if (!token) { return; }
    token = null;
    var form = new FormData();
    form.append("csrf_token", bar.dataset.csrf);
    if (leaving && navigator.sendBeacon) {
      navigator.sendBeacon(bar.dataset.endUrl, form);
      return;
    }
    fetch(bar.dataset.endUrl, {method: "POST", credentials: "same-origin", body: form}).then(function () {
      state(say("Ended"));
      bar.querySelector("[data-end]").hidden = true;
    });
  }

  function requestFor(form) {
    var path = form.dataset.path, query = [], headers = {};
    form.querySelectorAll("input[data-in]").forEach(function (input) {
      var value = input.value.trim();
      if (input.dataset.in === "path") {
        path = path.replace("{" + input.name + "}", encodeURIComponent(value));
      } else if (value && input.dataset.in === "header") {
        headers[input.name] = value;
      } else if (value) {
        value.split(",").forEach(function (part) {
          query.push(encodeURIComponent(input.name) + "=" + encodeURIComponent(part.trim()));
        });
      }
    });
    var body = form.querySelector("textarea[name=body]");
    return {url: path + (query.length ? "?" + query.join("&") : ""), headers: headers,
            body: body ? body.value : null};
  }

  function show(form, status, text) {
    var result = form.parentNode.querySelector(".try-result");
    result.hidden = false;
    result.querySelector(".try-status").textContent = status;
    result.querySelector(".try-output").textContent = text;
  }

  function send(event) {
    event.preventDefault();
    var form = event.target, call = requestFor(form);
    show(form, say("Sending"), "");
    askToken().then(function (bearer) {
      var headers = Object.assign({"Authorization": "Bearer " + bearer, "Accept": "application/json",
                                   "Accept-Language": document.documentElement.lang || "en"}, call.headers);
      var options = {method: form.dataset.method, headers: headers, credentials: "omit"};
      if (call.body !== null && form.dataset.method !== "GET") {
        headers["Content-Type"] = "application/json";
        options.body = call.body;
      }
      return fetch(call.url, options);
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      var line = response.status + " " + response.statusText + " · " + form.dataset.method + " " + call.url;
      if (type.indexOf("json") !== -1) {
        return response.text().then(function (text) {
          var pretty = text;
          try { pretty = JSON.stringify(JSON.parse(text), null, 2); } catch (ignored) { /* shown as sent */ }
          show(form, line, pretty);
        });
      }
      if (type.indexOf("text/") === 0) {
        return response.text().then(function (text) { show(form, line, text.slice(0, 20000)); });
      }
      return response.blob().then(function (blob) { show(form, line, "(" + type + ", " + blob.size + " bytes)"); });
    }).catch(function (error) {
      show(form, String(error.message || error), "");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    bar = document.querySelector("[data-testid=try-token]");
    if (!bar) { return; }
    document.querySelectorAll("form.try-it-form").forEach(function (form) {
      form.addEventListener("submit", send);
    });
    bar.querySelector("[data-end]").addEventListener("click", function () { endToken(false); });
    window.addEventListener("pagehide", function () { endToken(true); });
  });
})();
