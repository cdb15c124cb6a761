// The plots page: Chart.js (vendored) over the data the server put in #plot-data.
"use strict";
(function () {
  var data = JSON.parse(document.getElementById("plot-data").textContent);
  var palette = ["#1f4fbf", "#c0392b", "#1e8449", "#8e44ad", "#b9770e", "#117a8b", "#5d6d7e", "#d35400", "#7f8c8d"];
  var statusColours = {queued: "#5d6d7e", running: "#1f4fbf", succeeded: "#1e8449", failed: "#c0392b",
                       cancelled: "#b9770e", timed_out: "#8e44ad", budget_exceeded: "#d35400"};
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;

  function hourLabel(iso) { return iso.slice(5, 16).replace("T", " "); }
  function grouped(rows, key, value) {
    var hours = [], names = [], cells = {};
    rows.forEach(function (row) {
      if (hours.indexOf(row.hour) < 0) { hours.push(row.hour); }
      if (names.indexOf(row[key]) < 0) { names.push(row[key]); }
      cells[row.hour + "|" + row[key]] = row[value];
    });
    hours.sort();
    return {labels: hours.map(hourLabel), datasets: names.map(function (name, i) {
      return {label: name, backgroundColor: statusColours[name] || palette[i % palette.length],
              data: hours.map(function (hour) { return cells[hour + "|" + name] || 0; })};
    })};
  }
  function stacked(id, chartData, title) {
    new Chart(document.getElementById(id), {type: "bar", data: chartData,
      options: {plugins: {title: {display: false, text: title}}, scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true}}}});
  }
  stacked("tokens", grouped(data.spending, "name", "tokens"), "tokens");
  stacked("dollars", grouped(data.spending, "name", "cost_usd"), "dollars");
  stacked("statuses", grouped(data.statuses, "status", "tasks"), "tasks");
  new Chart(document.getElementById("durations"), {type: "bar",
    data: {labels: data.durations.map(function (row) { return row.bucket; }),
           datasets: [{label: "tasks", backgroundColor: palette[0], data: data.durations.map(function (row) { return row.tasks; })}]},
    options: {scales: {y: {beginAtZero: true}}}});
  var times = data.samples.map(function (s) { return s.at.slice(11, 19); });
  var queueNames = [];
  data.samples.forEach(function (s) { Object.keys(s.queues).forEach(function (q) { if (queueNames.indexOf(q) < 0) { queueNames.push(q); } }); });
  new Chart(document.getElementById("queues"), {type: "line",
    data: {labels: times, datasets: queueNames.map(function (q, i) {
      return {label: q, borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length], pointRadius: 0,
              data: data.samples.map(function (s) { return s.queues[q] || 0; })}; })},
    options: {scales: {y: {beginAtZero: true}}}});
  new Chart(document.getElementById("slots"), {type: "line",
    data: {labels: times, datasets: [
      {label: "busy", borderColor: palette[0], backgroundColor: palette[0], pointRadius: 0, data: data.samples.map(function (s) { return s.slots_busy; })},
      {label: "total", borderColor: palette[6], backgroundColor: palette[6], pointRadius: 0, data: data.samples.map(function (s) { return s.slots_total; })}]},
    options: {scales: {y: {beginAtZero: true}}}});
  document.body.setAttribute("data-plots-drawn", "true");
})();
