// The theme a visitor chose with the toggle (stored in localStorage), applied before the page
// paints so it never flashes the other one. Without a choice the system's preference holds.
(function () {
  "use strict";
  try {
    var theme = window.localStorage.getItem("baton-theme");
    if (theme === "dark" || theme === "light") document.documentElement.setAttribute("data-theme", theme);
  } catch (e) {}
})();
