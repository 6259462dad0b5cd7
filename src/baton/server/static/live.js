// The session page, live: new messages, the run's state and the assistant's text while it is
// generated, from the session's Server-Sent Events (GET /api/sessions/ID/events). The script
// tag names the stream in data-events; an EventSource reconnects by itself and sends the last
// message position it saw (Last-Event-ID), so the server replays what was missed. Without
// JavaScript the page shows the same on reload.
(function () {
  "use strict";
  var script = document.currentScript;
  var url = script && script.getAttribute("data-events");
  if (!url || !window.EventSource) return;

  function conversation() {
    return document.getElementById("conversation") || document.querySelector("ol.conversation");
  }

  function streaming() {
    var box = document.getElementById("streaming");
    if (!box) {
      var list = conversation();
      if (!list) return null;
      box = document.createElement("div");
      box.id = "streaming";
      box.className = "streaming";
      box.hidden = true;
      box.setAttribute("aria-live", "polite");
      list.parentNode.insertBefore(box, list.nextSibling);
    }
    return box;
  }

  function clearStreaming() {
    var box = document.getElementById("streaming");
    if (box) {
      box.textContent = "";
      box.hidden = true;
    }
  }

  function showMessage(data) {
    var list = conversation();
    if (!list || document.getElementById(data.message.id)) return; // shown already
    var holder = document.createElement("ol");
    holder.innerHTML = data.html; // rendered and sanitised by the server, as on the page
    var item = holder.firstElementChild;
    if (!item) return;
    var old = data.replaces ? document.getElementById(data.replaces) : null;
    if (old && old.parentNode === list) {
      list.replaceChild(item, old);
    } else {
      list.appendChild(item);
    }
    var empty = document.getElementById("no-messages") || document.querySelector("p.empty");
    if (empty) empty.remove();
    showCount(data.position);
    clearStreaming();
  }

  var LABELS = {
    queued: "Queued",
    preparing: "Preparing the workspace",
    running: "Running",
    done: "Done",
    failed: "Failed",
    stopped: "Stopped"
  };
  var STATES = ["queued", "preparing", "running", "done", "failed", "stopped"];

  function show(id, visible) {
    var element = document.getElementById(id);
    if (element) element.hidden = !visible;
  }

  function showCount(count) {
    var text = count.toLocaleString("en-US");
    var below = document.getElementById("message-count");
    if (below) below.textContent = text + (count === 1 ? " message" : " messages");
    var side = document.getElementById("side-message-count");
    if (side) side.textContent = text;
  }

  function showTimes(run) {
    var list = document.getElementById("run-times");
    if (!list || !run.times) return;
    STATES.forEach(function (state) {
      var when = run.times[state];
      if (!when) return;
      var stamp = when.slice(0, 19).replace("T", " ");
      var value = document.getElementById("run-time-" + state);
      if (!value) {
        var term = document.createElement("dt");
        term.textContent = state === "preparing" ? "Preparing" : LABELS[state];
        value = document.createElement("dd");
        value.id = "run-time-" + state;
        list.appendChild(term);
        list.appendChild(value);
      }
      value.textContent = stamp;
    });
  }

  function showRun(run) {
    var panel = document.getElementById("run-panel");
    if (panel) {
      var shown = panel.getAttribute("data-run");
      if (shown && shown !== run.id) {
        // another run of this session began: the page shows its own panel for it
        reload();
        return;
      }
      panel.setAttribute("data-state", run.state);
      panel.hidden = false;
    }
    var state = document.getElementById("run-state");
    if (state) {
      state.textContent = LABELS[run.state] || run.state;
      state.className = "status run-state run-" + run.state;
    }
    showTimes(run);
    show("run-stopping", run.active && run.cancel_requested);
    show("run-stop", run.active);
    var error = document.getElementById("run-error");
    if (error) {
      error.textContent = run.error || "";
      error.hidden = !run.error;
    }
    if (!run.active) clearStreaming();
  }

  var source = new EventSource(url);
  // A form sent from this page (a prompt, Stop) navigates to the page it answers with: the
  // stream of the page being left must not reload it meanwhile.
  var leaving = false;
  document.addEventListener(
    "submit",
    function () {
      leaving = true;
      setTimeout(function () {
        leaving = false; // the form did not leave (its sending was cancelled)
      }, 5000);
    },
    true
  );
  function reload() {
    source.close();
    if (!leaving) window.location.reload();
  }
  source.addEventListener("message", function (event) {
    showMessage(JSON.parse(event.data));
  });
  source.addEventListener("run", function (event) {
    showRun(JSON.parse(event.data));
  });
  source.addEventListener("delta", function (event) {
    var box = streaming();
    if (!box) return;
    box.textContent += JSON.parse(event.data).text;
    box.hidden = false;
  });
  source.addEventListener("reset", reload);
})();
