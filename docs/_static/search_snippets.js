// Search results with a snippet of text each and without repeats, from file:// too.
// Sphinx's search fetch()es every hit's page to cut a snippet from it, which a browser refuses from file://.
// build.py writes the text of every page (and of each of its sections) into page_texts.js; on the search page
// only, this loads it and answers those fetches from it. Repeats (the same page and anchor found as a title, a
// term and an index entry) are shown once.
(function () {
  const root = document.documentElement.dataset.content_root || "";
  if (!location.pathname.endsWith("/search.html")) return;
  const script = document.createElement("script");
  script.src = root + "_static/page_texts.js";
  const loaded = new Promise((done) => { script.onload = done; script.onerror = done; });
  document.head.appendChild(script);

  const site = new URL(root || "./", location.href).href;
  const realFetch = window.fetch.bind(window);
  window.fetch = (resource, ...rest) => {
    const url = new URL(String(resource), location.href);
    if (url.href.startsWith(site) && url.pathname.endsWith(".html")) {
      const page = url.href.slice(site.length).split("#")[0].replace(/\.html$/, "");
      return loaded.then(() => (window.PAGE_TEXTS || {})[page] !== undefined
        ? new Response("PAGE_TEXT:" + page, {headers: {"Content-Type": "text/plain"}})
        : realFetch(resource, ...rest));
    }
    return realFetch(resource, ...rest);
  };

  const patch = () => {
    if (typeof Search === "undefined") return setTimeout(patch, 10);
    const htmlToText = Search.htmlToText;
    Search.htmlToText = (html, anchor) => {
      if (!html.startsWith("PAGE_TEXT:")) return htmlToText(html, anchor);
      const page = window.PAGE_TEXTS[html.slice("PAGE_TEXT:".length)];
      return (anchor && page.sections[anchor.replace(/^#/, "")]) || page.text;
    };
    const performSearch = Search._performSearch;
    Search._performSearch = (...args) => {
      const seen = new Set();  // the best-scored hit of each page and anchor is last: keep it
      return performSearch(...args).reverse().filter(([doc, , anchor]) => {
        const key = `${doc}${anchor || ""}`;
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      }).reverse();
    };
  };
  patch();
})();
