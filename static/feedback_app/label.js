// Keyboard shortcuts and time on task for the labeling page. The page works without this file.
(function () {
  "use strict";
  var shownAt = performance.now();
  var CHOICES = { "1": "left", "2": "right", "3": "tie", "4": "both_bad" };
  var STRENGTHS = { q: "1", w: "2", e: "3" };

  function form() { return document.getElementById("label-form"); }

  function check(name, value) {
    var f = form();
    var input = f && f.querySelector('input[name="' + name + '"][value="' + value + '"]');
    if (input) { input.checked = true; input.dispatchEvent(new Event("change", { bubbles: true })); }
  }

  function click(id) {
    var button = document.getElementById(id);
    if (button && !button.disabled) { button.click(); }
  }

  // The rewrite box starts as the reply the rewrite starts from: the chosen one; with a tie the one
  // named under "Started from" (left unless the rater says otherwise); with both bad, that one or none.
  function replyText(side) {
    var text = document.querySelector('[data-testid="' + side + '-text"]');
    return text ? (text.dataset.text || "").replace(/\r\n?/g, "\n") : "";
  }

  function rewriteStart(f) {
    var choice = f.querySelector('input[name="choice"]:checked');
    var from = f.querySelector('input[name="edited_from"]:checked');
    choice = choice ? choice.value : "";
    from = from ? from.value : "";
    if (choice === "left" || choice === "right") { return choice; }
    if (choice === "tie" && !from) {  // a tie needs a start: say left on screen, where the rater can change it
      var left = f.querySelector('input[name="edited_from"][value="left"]');
      if (left) { left.checked = true; }
      return "left";
    }
    return from;
  }

  function prefill() {
    var f = form();
    var box = f && f.querySelector('textarea[name="edited_text"]');
    var rewrite = document.getElementById("rewrite");
    if (!box || !rewrite || !rewrite.open) { return; }
    if (box.value !== "" && box.value !== box.dataset.prefilled) { return; }  // the rater's own text stays
    var start = rewriteStart(f);
    box.value = start ? replyText(start) : "";
    box.dataset.prefilled = box.value;
  }

  function rewrite() {
    var details = document.getElementById("rewrite");
    if (!details) { return; }
    details.open = true;
    prefill();
    var box = details.querySelector("textarea");
    if (box) { box.focus(); }
  }

  function submit() {
    var f = form();
    if (!f) { return; }
    if (!f.querySelector('input[name="choice"]:checked')) {
      var legend = f.querySelector(".choices legend");
      if (legend) { legend.classList.add("attention"); setTimeout(function () { legend.classList.remove("attention"); }, 900); }
      return;
    }
    f.requestSubmit();
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) { return; }
    var target = event.target;
    if (target.matches("textarea, input[type=text], input[type=password], select")) {
      if (event.key === "Escape") { target.blur(); }
      return;
    }
    if (event.key === "Enter" && target.matches("button, a, summary")) { return; }
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (CHOICES[key]) { check("choice", CHOICES[key]); }
    else if (STRENGTHS[key]) { check("strength", STRENGTHS[key]); }
    else if (key === "Enter") { submit(); }
    else if (key === "s") { click("skip-button"); }
    else if (key === "u") { click("undo-button"); }
    else if (key === "t") { rewrite(); }
    else if (key === "g") {
      var guidelines = document.getElementById("guidelines");
      if (!guidelines) { return; }
      guidelines.open = !guidelines.open;
    }
    else if (key === "r") {
      var more = document.querySelector("details.more");
      if (more) { more.open = true; }
      var rationale = document.getElementById("id_rationale");
      if (rationale) { rationale.focus(); }
    }
    else { return; }
    event.preventDefault();
  });

  document.addEventListener("toggle", function (event) {
    if (event.target.id === "rewrite") { prefill(); }
  }, true);
  document.addEventListener("change", function (event) {
    var name = event.target.name;
    if (name === "choice" && (event.target.value === "left" || event.target.value === "right")) {
      var better = form() && form().querySelector('input[name="edited_from"][value=""]');
      if (better && !better.checked) { better.checked = true; }
    }
    if (name === "choice" || name === "edited_from") { prefill(); }
  });

  // Record how long the comparison was on screen, just before the form's values are read.
  document.addEventListener("submit", function (event) {
    var field = event.target.querySelector && event.target.querySelector('input[name="time_on_task_ms"]');
    if (field) { field.value = Math.round(performance.now() - shownAt); }
  }, true);

  // The page holds the next comparison ready in <template id="prefetched">. A submit shows it at once and sends the
  // label behind it; the answer (the workspace as the server sees it now) brings the comparison after that one.
  // Skip and undo, a form the server sends back, and a page without the template post as before (htmx).
  document.addEventListener("submit", function (event) {
    var f = event.target;
    var ahead = document.getElementById("prefetched");
    if (f.id !== "label-form" || (event.submitter && event.submitter.id) || !ahead || !ahead.content.firstElementChild || !window.fetch) { return; }
    event.preventDefault();
    event.stopImmediatePropagation();
    var body = new FormData(f);
    var before = document.getElementById("workspace");
    var shown = ahead.content.firstElementChild.cloneNode(true);
    before.replaceWith(shown);
    if (window.htmx) { window.htmx.process(shown); }
    shownAt = performance.now();
    var undo = document.getElementById("undo-button");
    if (undo) { undo.disabled = true; }  // until the label it would undo is stored
    fetch(f.action, { method: "POST", body: body, headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (response) { return response.text(); })
      .then(function (html) { settle(shown, html); })
      .catch(function () {
        if (!shown.isConnected) { return; }
        shown.replaceWith(before);  // the rater's answer is still on the form: submit again
        if (window.htmx) { window.htmx.process(before); }
        notice(before, "Your label was not sent (the connection failed); submit it again.");
      });
  }, true);

  function notice(workspace, text) {
    var row = workspace.querySelector(".status-row");
    var old = row && row.querySelector(".notice");
    if (old) { old.remove(); }
    if (row && text) {
      var p = document.createElement("p");
      p.className = "notice";
      p.setAttribute("role", "status");
      p.textContent = text;
      row.appendChild(p);
    }
  }

  // The server's answer to a label sent behind the page: when it shows the comparison already on screen, take only
  // what the label changed (today's count, undo, a notice, the next comparison held ready); else show its answer.
  function settle(shown, html) {
    if (!shown.isConnected) { return; }  // the rater has moved on; the page's next answer brings its state
    var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("workspace");
    if (!fresh) { return; }
    if (fresh.dataset.comparison !== shown.dataset.comparison) {
      var node = document.importNode(fresh, true);
      shown.replaceWith(node);
      if (window.htmx) { window.htmx.process(node); }
      shownAt = performance.now();
      return;
    }
    var count = fresh.querySelector("#today-count");
    if (count) { shown.querySelector("#today-count").textContent = count.textContent; }
    var undoFresh = fresh.querySelector("#undo-button");
    var undo = shown.querySelector("#undo-button");
    if (undo) { undo.disabled = undoFresh ? undoFresh.disabled : true; }
    var said = fresh.querySelector(".status-row .notice");
    notice(shown, said ? said.textContent : "");
    var old = shown.querySelector("#prefetched");
    var next = fresh.querySelector("#prefetched");
    if (old) { old.remove(); }
    if (next) { shown.querySelector("footer.keys").before(document.importNode(next, true)); }
  }

  // A push names the parts of the page it replaces by their ids. The queue notice goes to every rater of the campaign,
  // but only a page with an empty queue has its place: a page showing a comparison drops it here, quietly, where htmx
  // would log oobErrorNoTarget in the rater's console. (A template's content is inert: nothing in it loads or runs.)
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    var pushed = document.createElement("template");
    pushed.innerHTML = event.detail.message;
    var parts = Array.prototype.filter.call(pushed.content.children, function (part) { return part.id; });
    if (parts.length && parts.every(function (part) { return !document.getElementById(part.id); })) { event.preventDefault(); }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "workspace" || (event.detail.elt && event.detail.elt.id === "workspace")) {
      shownAt = performance.now();
    }
  });
  document.addEventListener("htmx:afterSettle", function () {
    var workspace = document.getElementById("workspace");
    if (workspace && workspace.dataset.comparison !== workspace.dataset.seen) {
      workspace.dataset.seen = workspace.dataset.comparison;
      shownAt = performance.now();
    }
  });
})();
