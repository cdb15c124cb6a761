// Live updates: task statuses on list pages, a task's timeline on its page (Server-Sent Events).
"use strict";
(function () {
  function setStatus(id, status, waiting) {
    document.querySelectorAll('[data-status-of="' + id + '"]').forEach(function (badge) {
      badge.className = "badge s-" + status;
      badge.textContent = status + (waiting ? " · " + waiting : "");
    });
  }

  var note = document.querySelector("[data-live-status]");
  if (note) {
    var fleet = new EventSource(note.getAttribute("data-live-status"));
    fleet.addEventListener("status", function (message) {
      var change = JSON.parse(message.data);
      setStatus(change.id, change.status, change.waiting_for);
    });
  }

  var timeline = document.getElementById("timeline");
  if (timeline && timeline.getAttribute("data-ended") !== "true") {
    var state = document.getElementById("live-state");
    var stream = new EventSource(timeline.getAttribute("data-stream"));
    stream.addEventListener("event", function (message) {
      var event = JSON.parse(message.data);
      if (!event.text || timeline.querySelector('[data-id="' + event.id + '"]')) { return; }
      var item = document.createElement("li");
      item.className = "event e-" + event.type;
      item.setAttribute("data-id", event.id);
      var kind = document.createElement("span");
      kind.className = "etype";
      kind.textContent = event.type + (event.subtype ? "/" + event.subtype : "");
      var text = document.createElement("span");
      text.className = "etext";
      text.textContent = event.text;
      item.appendChild(kind); item.appendChild(document.createTextNode(" ")); item.appendChild(text);
      timeline.appendChild(item);
      timeline.scrollTop = timeline.scrollHeight;
    });
    stream.addEventListener("status", function (message) {
      var task = JSON.parse(message.data);
      setStatus(task.id, task.status, task.waiting_for);
      var usage = task.usage;
      document.getElementById("tokens-in").textContent = usage.input_tokens;
      document.getElementById("tokens-out").textContent = usage.output_tokens;
      document.getElementById("cost").textContent = "$" + task.cost_usd.toFixed(4);
    });
    stream.addEventListener("end", function (message) {
      stream.close();
      state.textContent = "The run has ended (" + JSON.parse(message.data).status + ").";
    });
  }
})();
