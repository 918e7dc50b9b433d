// The UI's only script, served from the app itself: the CSP forbids inline and outside scripts.
// Pages opt in with data attributes; nothing here takes HTML from bundle content except the
// worksheet blocks, which the server renders with every value escaped.
(function () {
  // Live tail (bundle page): append what the run writes to stdout/stderr until it ends, then reload.
  var tail = document.querySelector("[data-tail]");
  if (tail) {
    var base = tail.dataset.tail;
    var poll = function () {
      var pending = ["stdout", "stderr"].map(function (name) {
        var pre = document.getElementById(name);
        return fetch(base + name + "?offset=" + pre.dataset.offset)
          .then(function (r) { return r.json(); })
          .then(function (j) {
            pre.textContent += j.data; pre.dataset.offset = j.offset;
            document.getElementById("state").textContent = j.state;
            return j.final;
          });
      });
      Promise.all(pending).then(function (done) {
        if (done[0]) { location.reload(); } else { setTimeout(poll, 500); }
      });
    };
    setTimeout(poll, 500);
  }
  // Live tables (worksheet page): while a bundle shown is unfinished, re-render the blocks every 2 s.
  var box = document.querySelector("[data-blocks]");
  if (box) {
    var refresh = function () {
      if (box.dataset.live !== "1") return;
      fetch(box.dataset.blocks).then(function (r) {
        box.dataset.live = r.headers.get("X-Live");
        return r.text();
      }).then(function (html) { box.innerHTML = html; setTimeout(refresh, 2000); });
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
