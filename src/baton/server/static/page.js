// What every page does with JavaScript (each works without it): the theme toggle, relative
// times (the exact time stays in the title, shown on hover), copy buttons on code blocks and
// commands, and long conversations: open at the latest turn, load earlier messages when the
// reader scrolls up and later ones as they scroll down (a share page loads the rest in the
// background), through the same "Earlier" / "Later" links a reader without JavaScript follows.
(function () {
  "use strict";
  var root = document.documentElement;

  // --- the theme toggle -----------------------------------------------------------------------
  function currentTheme() {
    var chosen = root.getAttribute("data-theme");
    if (chosen) return chosen;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  var toggle = document.getElementById("theme-toggle");
  function label() {
    if (!toggle) return;
    var dark = currentTheme() === "dark";
    toggle.textContent = dark ? "Light theme" : "Dark theme";
  }
  if (toggle) {
    toggle.hidden = false;
    label();
    toggle.addEventListener("click", function () {
      var next = currentTheme() === "dark" ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { window.localStorage.setItem("baton-theme", next); } catch (e) {}
      label();
    });
  }

  // --- relative times -------------------------------------------------------------------------
  var UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
               ["hour", 3600], ["minute", 60]];
  function relative(date) {
    var seconds = (Date.now() - date.getTime()) / 1000;
    if (Math.abs(seconds) < 45) return "just now";
    for (var i = 0; i < UNITS.length; i++) {
      var n = Math.round(Math.abs(seconds) / UNITS[i][1]);
      if (n >= 1) {
        var unit = UNITS[i][0] + (n === 1 ? "" : "s");
        return seconds >= 0 ? n + " " + unit + " ago" : "in " + n + " " + unit;
      }
    }
    return "just now";
  }
  function times(scope) {
    var found = scope.querySelectorAll("time[datetime]:not([data-relative])");
    for (var i = 0; i < found.length; i++) {
      var el = found[i];
      var date = new Date(el.getAttribute("datetime"));
      if (isNaN(date.getTime())) continue;
      if (!el.title) el.title = el.textContent;
      el.setAttribute("data-relative", "");
      el.textContent = relative(date);
    }
  }

  // --- copy buttons ---------------------------------------------------------------------------
  function copyText(text, button) {
    var done = function () {
      var before = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = before; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, done);
    } else {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy"); } catch (e) {}
      area.remove();
      done();
    }
  }
  function copyButtons(scope) {
    var blocks = scope.querySelectorAll(".body pre:not([data-copyable])");
    for (var i = 0; i < blocks.length; i++) {
      var pre = blocks[i];
      pre.setAttribute("data-copyable", "");
      pre.tabIndex = 0;  // a block that scrolls sideways scrolls with the keyboard too
      // a tool card's button sits in its head (one per card: it copies the card's last block,
      // a long output in full); any other block gets a bar of its own above the code, so no
      // line ever runs under the button
      var card = pre.closest(".tool-call, .tool-result");
      var head = card && card.querySelector(":scope > .tool-head");
      if (head && head.querySelector(".copy-code")) continue;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy-code";
      button.textContent = "Copy";
      button.setAttribute("aria-label", pre.classList.contains("command") ? "Copy the command" : "Copy the code");
      if (head) {
        head.appendChild(button);
        continue;
      }
      var holder = document.createElement("div");
      holder.className = "copyable";
      pre.parentNode.insertBefore(holder, pre);
      holder.appendChild(pre);
      holder.appendChild(button);
    }
  }
  document.addEventListener("click", function (event) {
    if (!event.target.closest) return;
    var button = event.target.closest(".copy-code");
    var scope = button && button.closest(".copyable, .tool-call, .tool-result");
    var blocks = scope ? scope.querySelectorAll("pre") : [];
    var pre = blocks.length ? blocks[blocks.length - 1] : null;
    if (pre) copyText(pre.textContent, button);
    var named = event.target.closest("[data-copy]");  // the value of a named field
    var field = named && document.getElementById(named.getAttribute("data-copy"));
    if (field) {
      field.select();
      copyText(field.value, named);
    }
  });

  function enhance(scope) {
    times(scope);
    copyButtons(scope);
  }
  enhance(document);
  var list = document.getElementById("conversation");
  if (window.MutationObserver && list) {
    new MutationObserver(function () { enhance(list); }).observe(list, { childList: true });
  }

  // --- long conversations ---------------------------------------------------------------------
  if (!list || !window.fetch || !window.DOMParser) return;
  var main = document.getElementById("live") || list.parentNode;

  function pageOf(href) {
    return fetch(href, { credentials: "same-origin" }).then(function (answer) {
      if (!answer.ok) throw new Error(answer.status);
      return answer.text();
    }).then(function (text) {
      return new DOMParser().parseFromString(text, "text/html");
    });
  }

  function fresh(items) {
    var out = [];
    for (var i = 0; i < items.length; i++) {
      if (!document.getElementById(items[i].id)) out.push(document.importNode(items[i], true));
    }
    return out;
  }

  var busy = { earlier: false, later: false };
  function load(which) {
    var link = document.getElementById("load-" + which);
    if (!link || busy[which]) return Promise.resolve(false);
    busy[which] = true;
    link.textContent = "Loading…";
    return pageOf(link.href).then(function (doc) {
      var items = fresh(doc.querySelectorAll("#conversation > li.message"));
      var next = doc.getElementById("load-" + which);
      if (which === "earlier") {
        var first = list.firstElementChild;
        var top = first ? first.getBoundingClientRect().top : 0;
        for (var i = items.length - 1; i >= 0; i--) list.insertBefore(items[i], list.firstElementChild);
        if (first) window.scrollBy(0, first.getBoundingClientRect().top - top);
      } else {
        for (var j = 0; j < items.length; j++) list.appendChild(items[j]);
      }
      if (next) {
        link.setAttribute("href", next.getAttribute("href"));
        link.textContent = next.textContent;
      } else {
        link.parentNode.remove();
      }
      busy[which] = false;
      return !!next;
    }).catch(function () {
      busy[which] = false;
      link.textContent = which === "earlier" ? "← Earlier (retry)" : "Later → (retry)";
      return false;
    });
  }

  // open at the message the address names, else (a session page) at the latest turn
  var named = location.hash ? decodeURIComponent(location.hash.slice(1))
    : (location.search.match(/[?&]at=([^&#]+)/) || [])[1];
  var target = named ? document.getElementById(named) : null;
  function open() {
    if (target) {
      target.scrollIntoView({ block: "start" });
    } else if (main.getAttribute("data-open") === "latest" && list.lastElementChild) {
      // the latest message at the bottom of the screen, the turn before it above; a message
      // taller than the screen from its start
      var last = list.lastElementChild;
      last.scrollIntoView({ block: last.offsetHeight < window.innerHeight * 0.8 ? "end" : "start" });
    }
  }
  open();
  var opened = window.scrollY;
  window.addEventListener("load", function () {
    if (window.scrollY === opened) open();  // again once laid out, unless the reader moved
  });

  if (window.IntersectionObserver) {
    var seen = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (!entry.isIntersecting) return;
        var which = entry.target.getAttribute("data-load");
        load(which).then(function (more) {
          // still in view after a load (a short page): keep going
          if (more) { seen.unobserve(entry.target); seen.observe(entry.target); }
        });
      });
    }, { rootMargin: "600px 0px" });
    var loaders = document.querySelectorAll(".loader[data-load]");
    setTimeout(function () {
      for (var k = 0; k < loaders.length; k++) seen.observe(loaders[k]);
    }, 300);  // after the opening scroll, so opening at the latest turn loads nothing above
  }
  // a share page reads as one scroll: the rest of the conversation loads in the background
  if (main.getAttribute("data-stream") === "true") {
    (function next() {
      load("later").then(function (more) { if (more) setTimeout(next, 50); });
    })();
  }
})();
