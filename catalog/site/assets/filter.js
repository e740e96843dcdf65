// Instant filtering of the unit-primitive index. Without JavaScript the form
// submits as a GET request and the server filters; with it, rows are hidden
// as the fields change, using the same rules (see Directory.Matches), and the
// URL keeps the filter so it can be shared.
(function () {
  "use strict";
  var form = document.querySelector("[data-filter-form]");
  var table = document.querySelector("[data-ups]");
  if (!form || !table) { return; }
  var rows = table.querySelectorAll("tbody tr");
  var count = document.querySelector("[data-count]");
  var empty = document.querySelector("[data-empty]");
  var fields = { backend: "backend", add_on: "addOn", license: "license", status: "status" };
  var exact = { group: "group", category: "category" };

  function value(name) { var el = form.elements[name]; return el ? el.value : ""; }
  function apply() {
    var q = value("q").trim().toLowerCase();
    var shown = 0;
    rows.forEach(function (row) {
      var ok = q === "" || row.dataset.search.indexOf(q) >= 0;
      Object.keys(fields).forEach(function (name) {
        var v = value(name);
        if (ok && v !== "") { ok = row.dataset[fields[name]].split(" ").indexOf(v) >= 0; }
      });
      Object.keys(exact).forEach(function (name) {
        var v = value(name);
        if (ok && v !== "") { ok = row.dataset[exact[name]] === v; }
      });
      row.hidden = !ok;
      if (ok) { shown++; }
    });
    count.textContent = String(shown);
    empty.hidden = shown !== 0;
    if (window.history && window.history.replaceState && location.protocol !== "file:") {
      var params = new URLSearchParams(new FormData(form));
      Array.from(params.keys()).forEach(function (k) { if (params.get(k) === "") { params.delete(k); } });
      var qs = params.toString();
      window.history.replaceState(null, "", qs ? "?" + qs : location.pathname);
    }
  }
  form.addEventListener("input", apply);
  form.addEventListener("change", apply);
  form.addEventListener("submit", function (ev) { ev.preventDefault(); apply(); });
  // A static copy ignores the query string on the server side: apply it here.
  var params = new URLSearchParams(location.search);
  params.forEach(function (v, k) { if (form.elements[k]) { form.elements[k].value = v; } });
  apply();
})();
