/* The projector's keys (docs/projector.md). Every screen works as plain links; this
   adds a keyboard or presenter clicker: arrows and PageUp/PageDown move, Enter opens,
   Space plays or pauses, B or "." blanks the screen, Esc goes back. ES5 on purpose. */
(function () {
  'use strict';
  var body = document.body;
  var blank = document.getElementById('blank');
  var lessonEl = document.querySelector('main.lesson');

  function usage(method, a, b, c) {
    var u = window.ketangUsage;
    if (u && typeof u[method] === 'function') {
      try { u[method](a, b, c); } catch (e) { /* usage must never break the projector */ }
    }
  }

  function items() {
    return Array.prototype.slice.call(document.querySelectorAll('[data-nav]'));
  }

  function focusItem(el) {
    if (!el) { return; }
    el.focus();
    if (el.scrollIntoView) { el.scrollIntoView({block: 'nearest', inline: 'nearest'}); }
  }

  function current(list) {
    var i = list.indexOf(document.activeElement);
    return i;
  }

  /* The item in the next row up or down whose centre is nearest, for a grid of tiles. */
  function spatial(list, from, dir) {
    var r = from.getBoundingClientRect();
    var cx = r.left + r.width / 2;
    var best = null;
    var bestScore = Infinity;
    for (var i = 0; i < list.length; i++) {
      var q = list[i].getBoundingClientRect();
      var dy = dir > 0 ? q.top - r.bottom : r.top - q.bottom;
      if (list[i] === from || dy < -2) { continue; }
      var score = Math.max(dy, 0) * 4 + Math.abs(q.left + q.width / 2 - cx);
      if (score < bestScore) { bestScore = score; best = list[i]; }
    }
    return best;
  }

  function toggleBlank(force) {
    var show = typeof force === 'boolean' ? force : blank.hidden;
    blank.hidden = !show;
  }

  function goUp() {
    var up = body.getAttribute('data-up');
    if (up) { window.location.href = up; }
  }

  /* ---- the drive banner, refreshed while an import runs ---- */
  function refreshDrives() {
    var box = document.getElementById('drives');
    var xhr = new XMLHttpRequest();
    xhr.open('GET', body.getAttribute('data-drives'));
    xhr.onload = function () {
      if (xhr.status === 200 && box.innerHTML !== xhr.responseText) { box.innerHTML = xhr.responseText; }
    };
    xhr.send();
  }
  setInterval(refreshDrives, 4000);

  /* ---- browse screens: move the focus ---- */
  function browseKey(e) {
    var list = items();
    if (!list.length) { return false; }
    var i = current(list);
    var k = e.key;
    if (i < 0 && k !== 'Escape') { focusItem(list[0]); return true; }
    if (k === 'ArrowRight' || k === 'PageDown' || k === 'Right') {
      focusItem(list[Math.min(i + 1, list.length - 1)]);
    } else if (k === 'ArrowLeft' || k === 'PageUp' || k === 'Left') {
      focusItem(list[Math.max(i - 1, 0)]);
    } else if (k === 'ArrowDown' || k === 'Down') {
      focusItem(spatial(list, list[i], 1) || list[Math.min(i + 1, list.length - 1)]);
    } else if (k === 'ArrowUp' || k === 'Up') {
      focusItem(spatial(list, list[i], -1) || list[Math.max(i - 1, 0)]);
    } else if (k === 'Home') {
      focusItem(list[0]);
    } else if (k === 'End') {
      focusItem(list[list.length - 1]);
    } else {
      return false;
    }
    return true;
  }

  /* ---- a lesson: parts and their pages ---- */
  var parts = lessonEl ? Array.prototype.slice.call(lessonEl.querySelectorAll('section.part')) : [];
  var tabs = lessonEl ? Array.prototype.slice.call(lessonEl.querySelectorAll('.part-tab')) : [];
  var at = {part: 0, page: 1};

  function pagesOf(i) { return parseInt(parts[i].getAttribute('data-pages'), 10) || 1; }

  function readPosition() {
    for (var i = 0; i < parts.length; i++) {
      if (!parts[i].hidden) {
        at.part = i;
        var pages = parts[i].querySelectorAll('.page');
        for (var j = 0; j < pages.length; j++) {
          if (!pages[j].hidden) { at.page = parseInt(pages[j].getAttribute('data-page'), 10) || 1; }
        }
      }
    }
  }

  function postFollow() {
    var url = lessonEl.getAttribute('data-follow');
    var part = parts[at.part];
    var xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    xhr.setRequestHeader('Content-Type', 'application/json');
    xhr.setRequestHeader('X-CSRFToken', lessonEl.getAttribute('data-csrf') || '');
    xhr.send(JSON.stringify({
      channel: lessonEl.getAttribute('data-usage-channel'),
      lesson: lessonEl.getAttribute('data-usage-lesson'),
      part: at.part, page: at.page,
      resource: part ? part.getAttribute('data-resource') : '',
      kind: part ? part.getAttribute('data-kind') : ''
    }));
  }

  function show(part, page, record) {
    var changedPart = part !== at.part;
    at.part = part;
    at.page = page;
    for (var i = 0; i < parts.length; i++) {
      var visible = i === part;
      if (!visible) {
        var v = parts[i].querySelector('video');
        if (v && !v.paused) { v.pause(); }
      }
      parts[i].hidden = !visible;
      var pages = parts[i].querySelectorAll('.page');
      for (var j = 0; j < pages.length; j++) {
        var n = parseInt(pages[j].getAttribute('data-page'), 10);
        pages[j].hidden = visible ? n !== page : n !== 1;
        if (pages[j].className.indexOf('question') >= 0 && pages[j].hidden) {
          pages[j].className = pages[j].className.replace(/\s*revealed/g, '');
        }
      }
    }
    for (var t = 0; t < tabs.length; t++) {
      var no = tabs[t].querySelector('.pageno');
      var total = parseInt(no.getAttribute('data-pages'), 10) || 1;
      if (t === part) {
        tabs[t].setAttribute('aria-current', 'step');
      } else {
        tabs[t].removeAttribute('aria-current');
      }
      if (total > 1) { no.textContent = ' ' + (t === part ? page : 1) + '/' + total; }
    }
    focusItem(tabs[part]);
    if (window.history && history.replaceState) {
      var url = window.location.pathname + '?part=' + part + '&page=' + page;
      history.replaceState(null, '', url);
    }
    postFollow();
    if (record && parts[part]) {
      var rid = parts[part].getAttribute('data-resource');
      var kind = parts[part].getAttribute('data-kind');
      if (changedPart) { usage('record', 'part-projected', rid, {}); }
      if (kind === 'pdf') { usage('record', 'pdf-page-viewed', rid, {page: page}); }
    }
  }

  function step(dir) {
    var part = at.part;
    var page = at.page + dir;
    if (page > pagesOf(part)) {
      if (part + 1 >= parts.length) { return; }
      part += 1; page = 1;
    } else if (page < 1) {
      if (part === 0) { return; }
      part -= 1; page = pagesOf(part);
    }
    show(part, page, true);
  }

  function playPause() {
    var v = parts[at.part] && parts[at.part].querySelector('video');
    if (!v) { return false; }
    if (v.paused) {
      var p = v.play();
      if (p && p.catch) { p.catch(function () {}); }
    } else {
      v.pause();
    }
    return true;
  }

  function reveal() {
    var q = parts[at.part] && parts[at.part].querySelector('.question:not([hidden])');
    if (!q) { return false; }
    if (q.className.indexOf('revealed') >= 0) {
      q.className = q.className.replace(/\s*revealed/g, '');
    } else {
      q.className += ' revealed';
    }
    return true;
  }

  function lessonKey(e) {
    var k = e.key;
    if (k === 'ArrowRight' || k === 'PageDown' || k === 'ArrowDown' || k === 'Right' || k === 'Down') {
      step(1);
    } else if (k === 'ArrowLeft' || k === 'PageUp' || k === 'ArrowUp' || k === 'Left' || k === 'Up') {
      step(-1);
    } else if (k === ' ' || k === 'Spacebar') {
      if (!playPause()) { reveal(); }
    } else if (k === 'Enter') {
      if (!reveal()) { playPause(); }
    } else if (k === 'Home') {
      show(0, 1, true);
    } else if (k === 'q' || k === 'Q') {
      body.className = body.className.indexOf('qr-big') >= 0 ?
        body.className.replace(/\s*qr-big/g, '') : body.className + ' qr-big';
    } else {
      return false;
    }
    return true;
  }

  document.addEventListener('keydown', function (e) {
    if (e.ctrlKey || e.altKey || e.metaKey) { return; }
    var k = e.key;
    if (!blank.hidden) {
      // Blanked: any key brings the picture back and does nothing else.
      if (k !== 'F5') { toggleBlank(false); e.preventDefault(); }
      return;
    }
    if (k === 'b' || k === 'B' || k === '.') {
      toggleBlank(true);
    } else if (k === 'Escape' || k === 'Esc' || k === 'Backspace') {
      if (body.className.indexOf('qr-big') >= 0) {
        body.className = body.className.replace(/\s*qr-big/g, '');
      } else {
        goUp();
      }
    } else if (!(lessonEl ? lessonKey(e) : browseKey(e))) {
      return;
    }
    e.preventDefault();
  });

  /* ---- start ---- */
  if (lessonEl) {
    readPosition();
    show(at.part, at.page, false);
    usage('projectedStart', lessonEl.getAttribute('data-usage-lesson'));
    window.addEventListener('pagehide', function () { usage('projectedEnd'); });
  } else {
    var list = items();
    var want = body.getAttribute('data-focus');
    var target = list[0];
    for (var i = 0; i < list.length; i++) {
      if (want && list[i].getAttribute('data-node') === want) { target = list[i]; break; }
    }
    focusItem(target);
  }
}());
