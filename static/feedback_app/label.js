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
    else if (key === "r") {
      var more = document.querySelector("details.more");
      if (more) { more.open = true; }
      var rationale = document.getElementById("id_rationale");
      if (rationale) { rationale.focus(); }
    }
    else { return; }
    event.preventDefault();
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
