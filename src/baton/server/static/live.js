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
    var empty = document.querySelector("p.empty");
    if (empty) empty.remove();
    clearStreaming();
  }

  function showRun(run) {
    var state = document.getElementById("run-state");
    if (state) {
      state.textContent = run.state;
      state.className = "run-state state-" + run.state;
    }
    var panel = document.getElementById("run-panel");
    if (panel) {
      panel.setAttribute("data-state", run.state);
      panel.setAttribute("data-run", run.id);
      panel.hidden = false;
    }
    if (run.state !== "running" && run.state !== "preparing") clearStreaming();
  }

  var source = new EventSource(url);
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
  source.addEventListener("reset", function () {
    source.close();
    window.location.reload();
  });
})();
