/* After a reader confirmed a comment by email: keep their author token in this browser, as the
   widget does, where this browser lets the widget read it (some keep a framed page's storage apart). */
(function () {
  "use strict";
  var token = document.getElementById("published").getAttribute("data-author-token");
  try { if (token) localStorage.setItem("moderation-author-token", token); } catch (e) { /* storage blocked */ }
})();
