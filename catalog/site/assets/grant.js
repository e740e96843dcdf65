// The grant calculator of a static copy of the directory, where no server
// can compute it. It applies the rule of catalog.Grant to the facts the page
// embeds: a unit primitive is granted when it is in free access on the date
// (no cut-off, or the date is before it) or one of its add-ons is held; the
// audiences are those of the granted unit primitives. The Chromium test
// checks it against `ccauthz catalog scopes`.
(function () {
  "use strict";
  var form = document.querySelector("[data-grant-form]");
  var dataEl = document.getElementById("grant-data");
  var out = document.getElementById("grant-result");
  if (!form || !dataEl || !out) { return; }
  var facts = JSON.parse(dataEl.textContent);

  function el(tag, text) { var e = document.createElement(tag); if (text !== undefined) { e.textContent = text; } return e; }
  function compute() {
    var held = Array.from(form.querySelectorAll("input[name=add_on]:checked")).map(function (i) { return i.value; });
    var atStr = form.elements.at.value;
    out.textContent = "";
    var at = Date.parse(atStr + "T00:00:00Z");
    if (isNaN(at)) { var p = el("p", "date: enter a date such as 2025-01-01"); p.className = "error"; out.appendChild(p); return; }
    var scopes = [], auds = {};
    facts.forEach(function (u) {
      var free = !u.cut_off || at < Date.parse(u.cut_off);
      var by = u.add_ons.filter(function (a) { return held.indexOf(a) >= 0; });
      if (!free && by.length === 0) { return; }
      scopes.push({ name: u.name, audiences: u.audiences, why: (free ? ["free access"] : []).concat(by).join(", ") });
      u.audiences.forEach(function (a) { auds[a] = true; });
    });
    var h = el("h2", "Granted on " + atStr + " to " + (held.length ? "holders of " + held.slice().sort().join(", ") : "everyone (no add-on)"));
    var summary = el("p");
    var n = el("strong", String(scopes.length)); n.setAttribute("data-scope-count", "");
    var a = el("span", Object.keys(auds).sort().join(" ")); a.setAttribute("data-audiences", "");
    summary.appendChild(n); summary.appendChild(document.createTextNode(" scopes; audiences: ")); summary.appendChild(a);
    var table = el("table"); table.className = "grant-scopes";
    var head = el("tr"); ["Scope", "Audiences", "Granted by"].forEach(function (t) { var th = el("th", t); th.scope = "col"; head.appendChild(th); });
    var thead = el("thead"); thead.appendChild(head); table.appendChild(thead);
    var body = el("tbody");
    scopes.forEach(function (s) {
      var tr = el("tr"); tr.setAttribute("data-scope", s.name);
      var link = el("a", s.name); link.href = "up/" + encodeURIComponent(s.name) + ".html";
      var td = el("td"); td.appendChild(link); tr.appendChild(td);
      tr.appendChild(el("td", s.audiences.join(" "))); tr.appendChild(el("td", s.why));
      body.appendChild(tr);
    });
    table.appendChild(body);
    out.appendChild(h); out.appendChild(summary); out.appendChild(table);
  }
  form.addEventListener("submit", function (ev) { ev.preventDefault(); compute(); });
  var params = new URLSearchParams(location.search);
  if (params.has("at")) {
    if (params.get("at")) { form.elements.at.value = params.get("at"); }
    form.querySelectorAll("input[name=add_on]").forEach(function (i) { i.checked = params.getAll("add_on").indexOf(i.value) >= 0; });
    compute();
  }
})();
