// The UI's only script, served from the app itself: the CSP forbids inline and outside scripts.
// Pages opt in with data attributes; nothing here takes HTML from bundle content except the
// worksheet blocks, which the server renders with every value escaped.
(function () {
  // Live tail (bundle page): append what the run writes to stdout/stderr until it ends, then reload.
  // Only the last KEEP characters stay (a chatty run must not exhaust the tab); the note above each
  // view, with its link to the whole file, shows once something was trimmed. A refused file (404:
  // a link out) or a failed request still says the state, or is retried: the page must learn the end.
  var tail = document.querySelector("[data-tail]");
  if (tail) {
    var KEEP = 1 << 20;
    var base = tail.dataset.tail;
    var show = function (name, j) {
      var pre = document.getElementById(name);
      // skipped: bytes between what is shown and j.data were never sent; joining them would lie
      var text = (j.reset || j.skipped > 0 ? "" : pre.textContent) + j.data;
      if (j.skipped > 0 || text.length > KEEP) {
        if (text.length > KEEP) {
          var cut = text.length - KEEP, nl = text.indexOf("\n", cut);
          text = text.slice(nl >= 0 && nl - cut < 4096 ? nl + 1 : cut);  // from a line start if one is near
        }
        document.getElementById(name + "-trimmed").hidden = false;
      }
      pre.textContent = text;
      pre.dataset.offset = j.offset;
    };
    var poll = function () {
      var pending = ["stdout", "stderr"].map(function (name) {
        var pre = document.getElementById(name);
        return fetch(base + name + "?offset=" + pre.dataset.offset)
          .then(function (r) { return r.json().catch(function () { return {status: r.status}; }); })
          .then(function (j) {
            if (typeof j.data === "string") { show(name, j); }
            return j;
          })
          .catch(function () { return null; });  // the server went away or answered no JSON: ask again
      });
      Promise.all(pending).then(function (answers) {
        var known = answers.filter(function (j) { return j && typeof j.final === "boolean"; });
        if (known.length) { document.getElementById("state").textContent = known[0].state; }
        if (known.some(function (j) { return j.final; })) { location.reload(); }
        else if (answers.some(function (j) { return j && j.status === 404; })) {
          location.reload();  // the bundle is gone (deleted): the reloaded page says so
        } else { setTimeout(poll, known.length ? 500 : 5000); }
      });
    };
    setTimeout(poll, 500);
  }
  // Live tables (worksheet page): while a bundle shown is unfinished, re-render the blocks every 2 s.
  // A failed refresh (server restarting, a 500) keeps the blocks shown and tries again; a 404 (the
  // worksheet is gone) reloads the page, which says so.
  var box = document.querySelector("[data-blocks]");
  if (box) {
    var refresh = function () {
      if (box.dataset.live !== "1") return;
      fetch(box.dataset.blocks).then(function (r) {
        if (r.status === 404) { location.reload(); return; }
        if (!r.ok) { setTimeout(refresh, 5000); return; }
        return r.text().then(function (html) {
          box.dataset.live = r.headers.get("X-Live");
          box.innerHTML = html;
          setTimeout(refresh, 2000);
        });
      }).catch(function () { setTimeout(refresh, 5000); });
    };
    setTimeout(refresh, 2000);
  }
  // Filters (examples page): a changed choice applies at once (the button stays for no-script use).
  var filters = document.querySelector("form[data-autosubmit]");
  if (filters) {
    filters.querySelectorAll("select").forEach(function (sel) {
      sel.addEventListener("change", function () { filters.submit(); });
    });
  }
  // Live images (a running fine-tune's curves): reload every data-refresh ms until the page reloads.
  document.querySelectorAll("img[data-refresh]").forEach(function (img) {
    var base = img.getAttribute("src");
    setInterval(function () { img.src = base + "&t=" + Date.now(); }, +img.dataset.refresh);
  });
})();
