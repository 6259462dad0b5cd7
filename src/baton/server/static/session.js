// What a session page keeps current beside live.js (which appends the messages and sets
// #run-panel's data-state and data-run when the session's run changes): the message count,
// and the run panel: the state's label, its times and error (read from GET /api/runs/ID),
// the Stop button while the run is active, and whether the prompt box may send. Without
// JavaScript a reload shows the same.
(function () {
  "use strict";
  if (!window.MutationObserver) return;

  // the message count: the position of the last message shown ("#7", or "#3–#7" when joined)
  var list = document.getElementById("conversation");
  if (list) {
    new MutationObserver(function () {
      var anchors = list.querySelectorAll("li.message .anchor");
      if (!anchors.length) return;
      var text = anchors[anchors.length - 1].textContent;
      var count = parseInt(text.slice(text.lastIndexOf("#") + 1), 10);
      if (!(count > 0)) return;
      var shown = count.toLocaleString("en-US");
      var pager = document.getElementById("message-count");
      if (pager) pager.textContent = shown + (count === 1 ? " message" : " messages");
      var side = document.getElementById("side-message-count");
      if (side) side.textContent = shown;
    }).observe(list, { childList: true });
  }

  var panel = document.getElementById("run-panel");
  if (!panel) return;
  var LABELS = {
    queued: "Queued",
    preparing: "Preparing the workspace",
    running: "Running",
    done: "Done",
    failed: "Failed",
    stopped: "Stopped"
  };
  var ORDER = ["queued", "preparing", "running", "done", "failed", "stopped"];
  var ACTIVE = { queued: true, preparing: true, running: true };

  function byId(id) {
    return document.getElementById(id);
  }

  function stamp(value) {
    return (value || "").slice(0, 19).replace("T", " ");
  }

  function showState(state) {
    var label = byId("run-state");
    if (label) {
      label.textContent = LABELS[state] || state;
      label.className = "status run-state run-" + state;
    }
    var active = !!ACTIVE[state];
    var stop = byId("run-stop");
    if (stop) stop.hidden = !active;
    var send = byId("send");
    if (send) send.disabled = active;
    var busy = byId("prompt-busy");
    if (busy) busy.hidden = !active;
    var form = byId("prompt-form");
    if (form) form.setAttribute("data-busy", active ? "true" : "false");
  }

  function showRun(run) {
    if (!run || !run.id || run.id !== panel.getAttribute("data-run")) return;
    showState(run.state);
    var times = byId("run-times");
    if (times && run.times) {
      while (times.firstChild) times.removeChild(times.firstChild);
      ORDER.forEach(function (state) {
        if (!run.times[state]) return;
        var term = document.createElement("dt");
        term.textContent = state === "preparing" ? "Preparing" : LABELS[state];
        var when = document.createElement("dd");
        when.id = "run-time-" + state;
        when.textContent = stamp(run.times[state]);
        times.appendChild(term);
        times.appendChild(when);
      });
    }
    var error = byId("run-error");
    if (error) {
      error.textContent = run.error || "";
      error.hidden = !run.error;
    }
    var stopping = byId("run-stopping");
    if (stopping) stopping.hidden = !(run.cancel_requested && ACTIVE[run.state]);
  }

  function refresh() {
    var state = panel.getAttribute("data-state");
    var id = panel.getAttribute("data-run");
    if (state) showState(state);
    if (!id || !window.fetch) return;
    fetch("/api/runs/" + encodeURIComponent(id), { credentials: "same-origin" })
      .then(function (answer) {
        return answer.ok ? answer.json() : null;
      })
      .then(function (body) {
        showRun(body && body.run ? body.run : body);
      })
      .catch(function () {});
  }

  new MutationObserver(refresh).observe(panel, {
    attributes: true,
    attributeFilter: ["data-state", "data-run"]
  });
})();
