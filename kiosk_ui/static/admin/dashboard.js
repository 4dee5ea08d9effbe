/* The dashboard refreshes itself: every 2 s it fetches /admin/status.json and swaps in
   each section the server rendered. ES5 only (old tablets); without JavaScript the
   page's <noscript> meta refresh reloads it instead. */
(function () {
  'use strict';
  var body = document.getElementById('dashboard');
  if (!body) { return; }
  var url = body.getAttribute('data-status-url');
  var loginUrl = body.getAttribute('data-login-url');
  var live = document.getElementById('live');
  var updated = document.getElementById('updated');
  var INTERVAL = 2000;
  if (!url || !window.XMLHttpRequest || !window.JSON) { return; }

  function apply(doc) {
    var sections = doc.sections || {};
    for (var name in sections) {
      if (!sections.hasOwnProperty(name)) { continue; }
      var el = document.querySelector('[data-section="' + name + '"]');
      if (el && el.innerHTML !== sections[name]) { el.innerHTML = sections[name]; }
    }
    if (updated && doc.time) { updated.textContent = doc.time; }
    if (live) { live.className = 'live'; }
  }

  function stale() {
    if (live) {
      live.className = 'live stale';
      live.setAttribute('title', live.getAttribute('data-stale'));
    }
  }

  function poll() {
    if (document.hidden) { setTimeout(poll, INTERVAL); return; }
    var xhr = new XMLHttpRequest();
    xhr.open('GET', url, true);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.onreadystatechange = function () {
      if (xhr.readyState !== 4) { return; }
      if (xhr.status === 401) {
        window.location.href = loginUrl + '?next=' + encodeURIComponent(window.location.pathname);
        return;
      }
      if (xhr.status === 200) {
        try { apply(JSON.parse(xhr.responseText)); } catch (e) { stale(); }
      } else {
        stale();
      }
      setTimeout(poll, INTERVAL);
    };
    xhr.send();
  }
  setTimeout(poll, INTERVAL);
}());
