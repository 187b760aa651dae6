// Charts of the dashboard, and their live updates. Data come from json_script tags; the
// websocket pushes new counters (and a new labels series) that htmx swaps in by id, and with a
// version swap or a run that succeeded, the chart data again (the model charts are redrawn).
(function () {
  "use strict";
  var charts = {};
  var COLORS = ["#3a5bd9", "#16794c", "#9a5b00", "#b42318", "#6941c6", "#0e7090"];

  function data(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function chart(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas || typeof Chart === "undefined") { return null; }
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { position: "bottom" } } }, config.options || {});
    charts[id] = new Chart(canvas, config);
    return charts[id];
  }

  function hourLabel(iso) { var d = new Date(iso); return d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + d.getHours() + ":00"; }

  function labelsConfig(series) {
    return { type: "bar", data: { labels: series.map(function (p) { return hourLabel(p.hour); }),
      datasets: [{ label: "labels", data: series.map(function (p) { return p.labels; }), backgroundColor: COLORS[0] }] },
      options: { scales: { y: { beginAtZero: true, title: { display: true, text: "labels per hour" } } } } };
  }

  // Confidence against how often it was right: one bubble per bin (size: how many), and the diagonal of perfect calibration.
  function reliabilityConfig(points, what, xTitle, yTitle) {
    return { type: "bubble", data: { datasets: [
      { label: what, data: points.map(function (p) { return { x: p.x, y: p.y, r: 3 + Math.sqrt(p.n) }; }), backgroundColor: COLORS[0] },
      { label: "perfect calibration", data: [{ x: 0.5, y: 0.5 }, { x: 1, y: 1 }], type: "line", borderColor: "#98a2b3", borderDash: [4, 4], pointRadius: 0 }] },
      options: { scales: { x: { type: "linear", min: 0.5, max: 1, title: { display: true, text: xTitle } },
        y: { min: 0, max: 1, title: { display: true, text: yTitle } } } } };
  }

  // The charts of a campaign's versions and raters, from the chart data (the page's, or one a swap or a finished run pushed).
  function drawModelCharts(d) {
    ["chart-reward", "chart-agreement", "chart-winrate", "chart-calibration"].forEach(function (id) {
      if (charts[id]) { charts[id].destroy(); delete charts[id]; }
    });
    var rms = d.reward_models;
    chart("chart-reward", { type: "line", data: { labels: rms.map(function (v) { return v.name; }), datasets: [
      { label: "validation accuracy", data: rms.map(function (v) { return v.val_accuracy; }), borderColor: COLORS[1], yAxisID: "acc" },
      { label: "active model's accuracy on the same pairs", data: rms.map(function (v) { return v.baseline_accuracy; }), borderColor: COLORS[1], borderDash: [4, 4], yAxisID: "acc" },
      { label: "validation loss", data: rms.map(function (v) { return v.val_loss; }), borderColor: COLORS[3], yAxisID: "loss" }] },
      options: { scales: { acc: { position: "left", min: 0, max: 1, title: { display: true, text: "accuracy" } },
        loss: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "loss" } } } } });
    var ag = d.agreement;
    chart("chart-agreement", { type: "line", data: { labels: ag.map(function (p) { return p.day; }), datasets: [
      { label: "percent agreement", data: ag.map(function (p) { return p.percent_agreement; }), borderColor: COLORS[0] },
      { label: "Krippendorff's α (ordinal)", data: ag.map(function (p) { return p.alpha_ordinal; }), borderColor: COLORS[4] }] },
      options: { scales: { y: { min: -0.2, max: 1 } } } });
    var pol = d.arena.filter(function (v) { return v.parent; });
    chart("chart-winrate", { type: "bar", data: { labels: pol.map(function (v) { return v.name; }), datasets: [
      { label: "humans (arena)", data: pol.map(function (v) { return v.human_win_rate_vs_parent ? v.human_win_rate_vs_parent.rate : null; }), backgroundColor: COLORS[0] },
      { label: "reward model (arena)", data: pol.map(function (v) { return v.rm_win_rate_vs_parent ? v.rm_win_rate_vs_parent.rate : null; }), backgroundColor: COLORS[2] },
      { label: "reward model (at training)", data: pol.map(function (v) { return v.rm_win_rate_at_training; }), backgroundColor: COLORS[5] }] },
      options: { scales: { y: { min: 0, max: 1, title: { display: true, text: "win rate vs parent" } } } } });
    var cal = d.calibration ? d.calibration.bins : [];
    chart("chart-calibration", reliabilityConfig(cal.map(function (b) { return { x: b.p_mean, y: b.accuracy, n: b.count }; }),
      "validation pairs, by confidence", "predicted probability of the chosen reply", "fraction right"));
  }

  var drawnChartData = null;  // the data the model charts show, as text: a push that brings other data redraws them
  var seenChartText = null;  // the chart-data element's text last read: most pushes carry none, and leave it as it was

  // The model charts' data as text: the page's comes with the labels series, which a push leaves out (the counters carry it).
  function modelChartText(d) {
    var copy = Object.assign({}, d);
    delete copy.labels_over_time;
    return JSON.stringify(copy);
  }

  function drawAll() {
    var d = data("chart-data");
    if (d) {
      chart("chart-labels", labelsConfig(d.labels_over_time));
      drawModelCharts(d);
      drawnChartData = modelChartText(d);
      seenChartText = document.getElementById("chart-data").textContent;
    }
    (data("reliability-data") || []).forEach(function (judge) {
      var config = reliabilityConfig(judge.points, "audits, by the judge's confidence", "judge's confidence", "agreement with people");
      config.data.datasets.push({ label: "threshold", data: [{ x: judge.threshold, y: 0 }, { x: judge.threshold, y: 1 }], type: "line",
        borderColor: COLORS[3], borderDash: [2, 2], pointRadius: 0 });
      chart("chart-reliability-" + judge.name, config);
    });
    var arena = data("arena-data");
    if (arena) {
      var rated = arena.filter(function (v) { return v.rating !== undefined; });
      chart("chart-arena", { type: "bar", data: { labels: rated.map(function (v) { return v.name; }), datasets: [
        { label: "rating", data: rated.map(function (v) { return v.rating; }), backgroundColor: COLORS[0] },
        { label: "95% interval", data: rated.map(function (v) { return [v.low, v.high]; }), backgroundColor: "rgba(58,91,217,0.25)" }] },
        options: { indexAxis: "y", scales: { x: { title: { display: true, text: "Bradley–Terry rating" } } } } });
    }
  }

  function liveUpdate() {
    var element = document.getElementById("chart-data");
    if (element && drawnChartData !== null && element.textContent !== seenChartText) {  // read only when a push replaced it
      seenChartText = element.textContent;
      var pushed = JSON.parse(seenChartText);
      if (modelChartText(pushed) !== drawnChartData) {
        drawnChartData = modelChartText(pushed);
        drawModelCharts(pushed);
      }
    }
    var series = data("live-series");
    var c = charts["chart-labels"];
    if (series && c) {
      var next = labelsConfig(series.labels_over_time).data;
      c.data.labels = next.labels;
      c.data.datasets[0].data = next.datasets[0].data;
      c.update();
    }
  }

  function setStatus(state, text) {
    var el = document.getElementById("live-status");
    if (el) { el.dataset.state = state; el.textContent = text; }
  }

  document.addEventListener("DOMContentLoaded", drawAll);
  document.addEventListener("htmx:wsAfterMessage", liveUpdate);
  document.addEventListener("htmx:wsOpen", function () { setStatus("open", "Live updates: on"); });
  document.addEventListener("htmx:wsClose", function () { setStatus("closed", "Live updates: reconnecting… (figures may be stale)"); });
  document.addEventListener("submit", function (event) {
    var message = event.target.dataset && event.target.dataset.confirm;
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });
})();
