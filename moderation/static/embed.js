/* The snippet's script: shows the comments of this article in an iframe served by the
   comment service, keyed by the page's canonical URL, and sizes the iframe to its content. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var service = new URL(script.src).origin;

  function canonicalUrl() {
    var link = document.querySelector('link[rel="canonical"][href]');
    var url = new URL(link ? link.href : location.href);
    url.hash = "";
    if (!link) url.search = "";
    return url.href;
  }

  function articleTitle() {
    var og = document.querySelector('meta[property="og:title"][content]');
    return (og ? og.getAttribute("content") : document.title || "").slice(0, 300);
  }

  function mount(container) {
    var key = container.getAttribute("data-site");
    if (!key || container.getAttribute("data-mounted")) return;
    container.setAttribute("data-mounted", "true");
    var src = service + "/embed/" + encodeURIComponent(key) +
      "?url=" + encodeURIComponent(canonicalUrl()) +
      "&title=" + encodeURIComponent(articleTitle()) +
      "&origin=" + encodeURIComponent(location.origin);
    var frame = document.createElement("iframe");
    frame.src = src;
    frame.title = "Comments";
    frame.setAttribute("scrolling", "no");
    frame.style.cssText = "width:100%;min-height:420px;border:0;display:block;overflow:hidden";
    container.appendChild(frame);

    window.addEventListener("message", function (event) {
      if (event.origin !== service || event.source !== frame.contentWindow) return;
      var data = event.data;
      if (!data || typeof data !== "object" || data.type !== "moderation:height") return;
      var height = Number(data.height);
      if (isFinite(height) && height > 0 && height < 100000) {
        frame.style.minHeight = "0";
        frame.style.height = Math.ceil(height) + "px";
      }
      if (data.scroll === true) frame.scrollIntoView({block: "nearest"});
    });
  }

  var containers = document.querySelectorAll("[data-site]");
  for (var i = 0; i < containers.length; i++) mount(containers[i]);
})();
