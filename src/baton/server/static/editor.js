// "Open in editor" on a share page: the editor picked last time is the main button. Each
// editor has its own URI scheme; the page lists them all, and works without this script.
(function () {
  var KEY = "baton.editor";
  var main = document.getElementById("open-in-editor");
  if (!main) return;
  function links() { return document.querySelectorAll("a.editor-link[data-editor]"); }
  function choose(scheme) {
    var found = null;
    Array.prototype.forEach.call(links(), function (a) {
      if (a.getAttribute("data-editor") === scheme) found = a;
    });
    if (!found) return;
    main.setAttribute("href", found.getAttribute("href"));
    main.setAttribute("data-editor", scheme);
    main.textContent = "Open in " + found.getAttribute("data-name");
  }
  var saved = null;
  try { saved = window.localStorage.getItem(KEY); } catch (e) { /* storage may be off */ }
  if (saved) choose(saved);
  document.addEventListener("click", function (event) {
    var a = event.target.closest ? event.target.closest("a.editor-link[data-editor]") : null;
    if (!a) return;
    var scheme = a.getAttribute("data-editor");
    try { window.localStorage.setItem(KEY, scheme); } catch (e) { /* remembered for this page only */ }
    choose(scheme);
    var details = a.closest("details");
    if (details) details.removeAttribute("open");
  });
})();
