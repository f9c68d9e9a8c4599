// The monitor's own script: live execution pages over server-sent events (only while the tab
// is visible), pan and zoom of the DAG, confirmations, and keyboard shortcuts.
(function () {
  "use strict";

  function live(root) {
    var source = null;
    var last = root.getAttribute("data-last-event") || "0";
    var fetching = false, again = false;

    function refresh() {
      if (fetching) { again = true; return; }
      fetching = true;
      fetch(root.getAttribute("data-live"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
        .then(function (html) {
          var scroll = root.querySelector(".viewport");
          var at = scroll ? [scroll.scrollLeft, scroll.scrollTop] : null;
          root.innerHTML = html;
          var status = root.querySelector("#status");
          if (status) root.setAttribute("data-status", status.textContent.trim());
          var moved = root.querySelector(".viewport");
          if (moved && at) { moved.scrollLeft = at[0]; moved.scrollTop = at[1]; }
          wire(root);
        })
        .catch(function () {})
        .then(function () { fetching = false; if (again) { again = false; refresh(); } });
    }

    function open() {
      if (source) return;
      source = new EventSource(root.getAttribute("data-events") + "?after=" + encodeURIComponent(last));
      source.addEventListener("changed", function (e) { last = e.lastEventId || last; refresh(); });
      source.addEventListener("end", function () { close(); refresh(); });
    }
    function close() { if (source) { source.close(); source = null; } }

    document.addEventListener("visibilitychange", function () {
      if (document.hidden) { close(); } else if (!/^(completed|failed|cancelled)$/.test(root.getAttribute("data-status"))) { open(); refresh(); }
    });
    if (!/^(completed|failed|cancelled)$/.test(root.getAttribute("data-status"))) open();
  }

  // the executions list: its rows fetched anew when executions change, while the tab is visible
  function liveList(root) {
    var source = null, fetching = false;
    function refresh() {
      if (fetching) return;
      fetching = true;
      fetch(root.getAttribute("data-list-live"), { credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
        .then(function (html) {
          var chosen = Array.prototype.map.call(root.querySelectorAll("input[name=ids]:checked"), function (i) { return i.value; });
          root.innerHTML = html;
          chosen.forEach(function (id) { var box = root.querySelector('input[name=ids][value="' + id + '"]'); if (box) box.checked = true; });
        })
        .catch(function () {})
        .then(function () { fetching = false; });
    }
    function open() {
      if (source) return;
      source = new EventSource(root.getAttribute("data-list-events"));
      source.addEventListener("changed", refresh);
    }
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) { if (source) { source.close(); source = null; } } else { open(); refresh(); }
    });
    open();
  }

  function zoom(viewport) {
    var svg = viewport.querySelector("svg");
    if (!svg || viewport.dataset.wired) return;
    viewport.dataset.wired = "1";
    var scale = 1, drag = null;
    function apply() { svg.style.transform = "scale(" + scale + ")"; svg.style.width = ""; }
    viewport.addEventListener("wheel", function (e) {
      if (!e.ctrlKey && !e.metaKey) return;
      e.preventDefault();
      scale = Math.min(3, Math.max(0.2, scale * (e.deltaY < 0 ? 1.1 : 0.9)));
      apply();
    }, { passive: false });
    viewport.addEventListener("keydown", function (e) {
      if (e.key === "+" || e.key === "=") { scale = Math.min(3, scale * 1.2); apply(); }
      else if (e.key === "-") { scale = Math.max(0.2, scale / 1.2); apply(); }
      else if (e.key === "0") { scale = 1; apply(); }
    });
    viewport.addEventListener("pointerdown", function (e) {
      if (e.target.closest("a")) return;
      drag = [e.clientX, e.clientY, viewport.scrollLeft, viewport.scrollTop];
    });
    window.addEventListener("pointerup", function () { drag = null; });
    viewport.addEventListener("pointermove", function (e) {
      if (!drag) return;
      viewport.scrollLeft = drag[2] - (e.clientX - drag[0]);
      viewport.scrollTop = drag[3] - (e.clientY - drag[1]);
    });
  }

  function wire(scope) {
    scope.querySelectorAll("[data-zoom]").forEach(zoom);
    scope.querySelectorAll("button[data-confirm]").forEach(function (button) {
      button.addEventListener("click", function (e) { if (!window.confirm(button.getAttribute("data-confirm"))) e.preventDefault(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    wire(document);
    var root = document.querySelector("[data-execution][data-events]");
    if (root) live(root);
    var list = document.querySelector("[data-list-live]");
    if (list) liveList(list);
    document.addEventListener("keydown", function (e) {
      if (e.target.closest("input, textarea, select") || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === "/") { var q = document.querySelector("input[name=q]"); if (q) { e.preventDefault(); q.focus(); } }
      if (e.key === "g") { window.location.href = "/ui/executions"; }
    });
  });
})();
