// ferry: small improvements for browsers with JavaScript. Every page works
// without this file.
(function () {
  'use strict';
  var doc = document;
  doc.documentElement.className = 'js';

  // Ask before destructive forms (data-confirm="...").
  doc.addEventListener('submit', function (e) {
    var f = e.target;
    var q = f && f.getAttribute && f.getAttribute('data-confirm');
    if (q && !window.confirm(q)) { e.preventDefault(); }
  });

  // Open a conversation at its newest message.
  function toBottom() { window.scrollTo(0, doc.body.scrollHeight); }
  if (doc.getElementById('latest') && !location.hash) { toBottom(); }

  // Ctrl/Cmd+Enter sends the message being written.
  var body = doc.getElementById('body');
  if (body) {
    body.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && body.form) { body.form.submit(); }
    });
  }

  // Live updates: when the server says something changed, fetch this page
  // again and swap in its live regions (messages, lists, unread counts).
  if (!doc.body.hasAttribute('data-live') || !window.EventSource || !window.fetch || !window.DOMParser) { return; }
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    var nearEnd = window.innerHeight + window.pageYOffset >= doc.body.offsetHeight - 80;
    fetch(location.href, { credentials: 'same-origin', headers: { 'X-Ferry-Live': '1' } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, 'text/html');
        var regions = doc.querySelectorAll('[data-live-region]');
        for (var i = 0; i < regions.length; i++) {
          var el = regions[i], n = fresh.getElementById(el.id);
          if (n) { el.parentNode.replaceChild(doc.importNode(n, true), el); }
        }
        if (nearEnd && doc.getElementById('latest')) { toBottom(); }
        doc.body.setAttribute('data-refreshed', String(Date.now()));
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var es = new EventSource('/events');
  es.addEventListener('change', refresh);
})();
