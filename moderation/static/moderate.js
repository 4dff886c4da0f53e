// The moderator's keyboard and live updates. Everything here only enhances plain forms and
// links that work without JavaScript: keys press the same buttons, the feed adds notices.
// On the queue every key works; on a comment's page (one card) the keys that make sense there.
(function () {
  "use strict";
  var single = document.querySelector(".card.single");
  var cards = single ? [single] : Array.prototype.slice.call(document.querySelectorAll("li.card"));
  var list = document.querySelector("ol.queue");
  var current = single ? 0 : -1;
  var claimed = {};

  function csrfToken() {
    var field = document.querySelector("input[name=csrf_token]");
    return field ? field.value : "";
  }

  function claim(card) {
    var url = card.getAttribute("data-claim");
    if (!url || claimed[url]) return;
    claimed[url] = true;
    fetch(url, { method: "POST", headers: { "X-CSRFToken": csrfToken() }, credentials: "same-origin" });
  }

  function select(index) {
    if (!cards.length) return;
    current = Math.max(0, Math.min(cards.length - 1, index));
    cards.forEach(function (card, n) { card.classList.toggle("current", n === current); });
    cards[current].focus();
    claim(cards[current]);
  }

  function submit(form) {
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
  }

  function press(action) {
    var card = cards[current];
    var form = card && card.querySelector("form.decision[data-action=" + action + "]");
    if (form && !card.classList.contains("gone")) submit(form);
  }

  function edit() {
    var box = document.getElementById("edit-body");
    if (single && box) {
      box.scrollIntoView({ block: "center" });
      box.focus();
    } else if (cards[current]) {
      window.location = cards[current].querySelector("a.open").href + "#edit-body";  // the edit box
    }
  }

  function toggleSelected() {
    var box = cards[current] && cards[current].querySelector("input[type=checkbox]");
    if (box) box.checked = !box.checked;
  }

  function undo() {
    var form = document.getElementById("undo");
    if (form) submit(form);
  }

  function toggleHelp() {
    var keys = document.getElementById("keys");
    if (!keys) return;
    keys.open = !keys.open;
    keys.querySelector("summary").focus();
  }

  function closeHelp() {
    var keys = document.getElementById("keys");
    if (keys) keys.open = false;
  }

  var everywhere = {
    a: function () { press("approve"); },
    r: function () { press("reject"); },
    f: function () { press("flag"); },
    e: edit,
    u: undo,
    "?": toggleHelp,
    Escape: closeHelp
  };
  var queueOnly = {
    j: function () { select(current + 1); },
    k: function () { select(current - 1); },
    x: toggleSelected
  };

  document.addEventListener("focusin", function (event) {
    var card = event.target.closest && event.target.closest("li.card");
    if (card) {
      current = cards.indexOf(card);
      cards.forEach(function (other) { other.classList.toggle("current", other === card); });
      claim(card);
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) {
      if (event.key === "Escape") target.blur();
      return;
    }
    var action = everywhere[event.key] || (!single && queueOnly[event.key]);
    if (!action) return;
    action();
    event.preventDefault();
  });

  // After a decision the server sends us back to #c<next card>: keep the keyboard there.
  if (location.hash.match(/^#c\d+$/)) {
    var target = document.getElementById(location.hash.slice(1));
    if (target) select(cards.indexOf(target));
  }

  // Live: counts, new comments and decisions by others, polled with an ETag.
  if (!list || !list.getAttribute("data-live") || !window.fetch) return;
  var etag = null;
  function poll() {
    var seen = cards.map(function (card) {
      return card.getAttribute("data-id") + "." + card.getAttribute("data-version");
    }).join(",");
    var url = list.getAttribute("data-live");
    url += (url.indexOf("?") < 0 ? "?" : "&") + "newest=" + list.getAttribute("data-newest") + "&seen=" + seen;
    var headers = etag ? { "If-None-Match": etag } : {};
    fetch(url, { headers: headers, cache: "no-store", credentials: "same-origin" }).then(function (response) {
      if (response.status !== 200) return null;
      etag = response.headers.get("ETag");
      return response.json();
    }).then(function (data) {
      if (!data) return;
      Object.keys(data.counts).forEach(function (tab) {
        var count = document.querySelector(".count[data-tab=" + tab + "]");
        if (count) count.textContent = data.counts[tab] > data.cap ? data.cap + "+" : data.counts[tab];
      });
      var news = document.getElementById("live-news");
      if (news && data["new"] > 0) {
        news.querySelector("span").textContent = data["new"] + " new comment" + (data["new"] === 1 ? "" : "s") + " arrived.";
        news.hidden = false;
      }
      cards.forEach(function (card) {
        var who = data.reviewing[card.getAttribute("data-id")];
        var note = card.querySelector(".reviewing");
        note.textContent = who ? "Being reviewed by " + who : "";
        note.hidden = !who;
        card.classList.toggle("claimed", Boolean(who));
      });
      data.changed.forEach(function (change) {
        var card = document.getElementById("c" + change.id);
        if (!card || card.classList.contains("gone")) return;
        card.classList.add("gone");
        var note = card.querySelector(".live-change");
        note.textContent = change.message;
        note.hidden = false;
        card.querySelectorAll("button").forEach(function (button) { button.disabled = true; });
      });
    }).catch(function () { /* offline for a moment: try again at the next tick */ });
  }
  setInterval(poll, Number(list.getAttribute("data-interval") || 15000));
}());
