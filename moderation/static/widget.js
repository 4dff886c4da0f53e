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

  /* The report form: with the reader's author token, the limit on reports counts this reader
     rather than everyone behind the same IP address. */
  var reportToken = document.querySelector('#report-form input[name="author_token"]');
  if (reportToken && !reportToken.value) reportToken.value = stored(TOKEN_KEY) || "";

  /* "Save my name, email, and website in this browser": only when ticked, only in this browser,
     and offered only where this frame may keep anything (browsers blocking third-party storage
     deny it; then the box stays hidden rather than promise what it cannot do). */
  var DETAILS_KEY = "moderation-details";
  var DETAILS = ["name", "email", "website"];
  var save = document.getElementById("save-details");
  var canStore = false;
  try { localStorage.setItem("moderation-probe", "1"); localStorage.removeItem("moderation-probe"); canStore = true; } catch (e) { canStore = false; }
  if (form && save && canStore) {
    document.getElementById("save-details-row").hidden = false;
    var saved = null;
    try { saved = JSON.parse(stored(DETAILS_KEY) || "null"); } catch (e) { saved = null; }
    if (saved && typeof saved === "object") {
      DETAILS.forEach(function (name) {
        var input = form.elements.namedItem(name);
        if (input && !input.value && typeof saved[name] === "string") input.value = saved[name];
      });
      save.checked = true;
    }
    form.addEventListener("submit", function () {
      if (!save.checked) {
        try { localStorage.removeItem(DETAILS_KEY); } catch (e) { /* nothing was stored */ }
        return;
      }
      var details = {};
      DETAILS.forEach(function (name) { details[name] = form.elements.namedItem(name).value; });
      store(DETAILS_KEY, JSON.stringify(details));
    });
  }

  /* The reader's own comments still awaiting moderation, shown again on return: this browser
     keeps a signed receipt for each, and only the receipt's holder is told how it stands. */
  var mineUrl = body.getAttribute("data-mine-url");
  var PENDING_KEY = "moderation-pending:" + mineUrl;
  var receipts = [];
  try { receipts = JSON.parse(stored(PENDING_KEY) || "[]"); } catch (e) { receipts = []; }
  if (!Array.isArray(receipts)) receipts = [];
  receipts = receipts.filter(function (r) { return r && typeof r.r === "string" && typeof r.id === "number"; });
  var freshId = Number(body.getAttribute("data-pending-id"));
  var freshReceipt = body.getAttribute("data-pending-receipt");
  if (freshReceipt && !receipts.some(function (r) { return r.id === freshId; })) {
    receipts.push({id: freshId, r: freshReceipt});
    receipts = receipts.slice(-20);
    store(PENDING_KEY, JSON.stringify(receipts));
  }

  function showPending(comment) {
    var box = document.createElement("div");
    box.className = "comment own-pending";
    var header = document.createElement("header");
    var author = document.createElement("span");
    author.className = "author";
    author.textContent = comment.author;
    var badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "awaiting moderation";
    header.append(author, " ", badge);
    var text = document.createElement("div");
    text.className = "body";
    text.innerHTML = comment.body_html;  /* the sanitizer's output, as the server renders it */
    box.append(header, text);
    document.getElementById("status").appendChild(box);
  }

  var urlField = form && form.elements.namedItem("url");
  if (mineUrl && receipts.length && urlField) {
    var query = receipts.map(function (r) { return "r=" + encodeURIComponent(r.r); }).join("&");
    fetch(mineUrl + "?" + query, {credentials: "omit", cache: "no-store"})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data || !Array.isArray(data.comments)) return;
        var pending = {};
        data.comments.forEach(function (c) { if (c.status === "pending") pending[c.id] = c; });
        receipts = receipts.filter(function (r) { return pending[r.id]; });
        store(PENDING_KEY, JSON.stringify(receipts));
        receipts.forEach(function (r) {
          var c = pending[r.id];
          if (c.url === urlField.value && c.id !== freshId) showPending(c);
        });
        sendHeight(false);
      })
      .catch(function () { /* offline or blocked: nothing to show */ });
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
