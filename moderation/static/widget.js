/* Inside the widget's iframe: tell the embedding page our height, open the reply form under
   the comment being answered, and keep the author token in this browser. Everything here is an
   enhancement: without it the form posts and the Reply links navigate as plain HTML. */
(function () {
  "use strict";
  var body = document.body;
  var parentOrigin = body.getAttribute("data-parent-origin");
  var TOKEN_KEY = "moderation-author-token";

  function store(key, value) {
    try { localStorage.setItem(key, value); } catch (e) { /* storage blocked: the form still works */ }
  }
  function stored(key) {
    try { return localStorage.getItem(key); } catch (e) { return null; }
  }

  function sendHeight(scroll) {
    if (window.parent === window || !parentOrigin) return;
    var height = document.documentElement.scrollHeight;
    window.parent.postMessage({type: "moderation:height", height: height, scroll: !!scroll}, parentOrigin);
  }

  var fresh = body.getAttribute("data-author-token");
  if (fresh) store(TOKEN_KEY, fresh);
  var form = document.getElementById("comment-form");
  if (form) {
    var tokenField = form.querySelector('input[name="author_token"]');
    var known = stored(TOKEN_KEY);
    if (tokenField && known && !tokenField.value) tokenField.value = known;
  }

  var respond = document.getElementById("respond");
  var home = document.getElementById("respond-home");
  var parentField = document.getElementById("parent_id");
  var replyingTo = document.getElementById("replying-to");

  function replyTo(link) {
    var item = link.closest("li.comment");
    var old = document.getElementById("reply-slot");
    var slot = document.createElement("li");
    slot.className = "reply-slot " + item.className.replace("comment", "").trim();
    item.after(slot);
    slot.appendChild(respond);
    if (old) old.remove();
    slot.id = "reply-slot";
    parentField.value = link.getAttribute("data-reply-to");
    replyingTo.firstChild.textContent = "Replying to " + link.getAttribute("data-author") + ". ";
    replyingTo.hidden = false;
    respond.classList.add("replying");
    form.querySelector("textarea").focus();
    sendHeight(false);
  }

  function cancelReply() {
    parentField.value = "";
    replyingTo.hidden = true;
    respond.classList.remove("replying");
    home.appendChild(respond);
    var slot = document.getElementById("reply-slot");
    if (slot) slot.remove();
    form.querySelector("textarea").focus();
    sendHeight(false);
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest("a.reply");
    if (link && respond) {
      event.preventDefault();
      replyTo(link);
      return;
    }
    if (event.target.id === "cancel-reply" && respond) {
      event.preventDefault();
      cancelReply();
    }
  });

  if ("ResizeObserver" in window) new ResizeObserver(function () { sendHeight(false); }).observe(document.documentElement);
  window.addEventListener("load", function () {
    sendHeight(location.hash === "#status");
  });
  sendHeight(false);
})();
