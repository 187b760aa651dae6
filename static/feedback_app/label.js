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
