/* The ledger table of the PDLT book: sort by clicking a column header, filter by text and by kind.
   No dependencies; works on every table.pdlt-ledger inside a div.pdlt-ledger-app. */
(function () {
  "use strict";
  function cellValue(row, i) {
    var c = row.cells[i];
    if (!c) return "";
    var v = c.getAttribute("data-sort");
    return v !== null ? v : c.textContent.trim();
  }
  function compare(a, b) {
    var x = parseFloat(a), y = parseFloat(b);
    if (!isNaN(x) && !isNaN(y) && String(x) !== "NaN") return x - y;
    if (!isNaN(x) && isNaN(y)) return -1;
    if (isNaN(x) && !isNaN(y)) return 1;
    return a.localeCompare(b);
  }
  function makeSortable(table) {
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(heads, function (th, i) {
      th.setAttribute("role", "button");
      th.setAttribute("tabindex", "0");
      th.title = "sort by " + th.textContent.trim();
      function sort() {
        var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
        Array.prototype.forEach.call(table.tBodies, function (body) {
          var rows = Array.prototype.slice.call(body.rows);
          rows.sort(function (r1, r2) { return dir * compare(cellValue(r1, i), cellValue(r2, i)); });
          rows.forEach(function (r) { body.appendChild(r); });
        });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
    });
  }
  function setup(app) {
    var text = app.querySelector("input.pdlt-filter-text");
    var kind = app.querySelector("select.pdlt-filter-kind");
    var verdict = app.querySelector("select.pdlt-filter-verdict");
    var count = app.querySelector(".pdlt-filter-count");
    var groups = app.querySelectorAll("details.pdlt-ledger-group");
    function apply() {
      var q = (text && text.value || "").toLowerCase(), k = kind ? kind.value : "", v = verdict ? verdict.value : "";
      var shown = 0;
      Array.prototype.forEach.call(groups, function (g) {
        var n = 0;
        Array.prototype.forEach.call(g.querySelectorAll("tbody tr"), function (r) {
          var ok = (!q || r.textContent.toLowerCase().indexOf(q) >= 0) &&
                   (!k || r.getAttribute("data-kind") === k) &&
                   (!v || r.getAttribute("data-verdict") === v);
          r.style.display = ok ? "" : "none";
          if (ok) n++;
        });
        g.style.display = n ? "" : "none";
        if ((q || k || v) && n) g.open = true;
        shown += n;
      });
      if (count) count.textContent = shown + " shown";
    }
    [text, kind, verdict].forEach(function (el) { if (el) el.addEventListener("input", apply); });
    var open = app.querySelector("button.pdlt-open-all"), close = app.querySelector("button.pdlt-close-all");
    if (open) open.addEventListener("click", function () { groups.forEach(function (g) { g.open = true; }); });
    if (close) close.addEventListener("click", function () { groups.forEach(function (g) { g.open = false; }); });
    app.querySelectorAll("table.pdlt-ledger").forEach(makeSortable);
    apply();
  }
  function init() { document.querySelectorAll("div.pdlt-ledger-app").forEach(setup); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
