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
      kind: part ? part.getAttribute('data-kind') : '',
      round: lessonEl.getAttribute('data-round') || ''
    }));
  }

  /* A lesson opened for a class: its parts count as projected for that class. */
  function forClass() {
    var k = parseInt(lessonEl.getAttribute('data-class'), 10);
    return k > 0 ? {'class': k} : {};
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
    fitPdf();
    if (window.history && history.replaceState) {
      var k = lessonEl.getAttribute('data-class');
      var url = window.location.pathname + '?part=' + part + '&page=' + page + (k ? '&class=' + k : '');
      history.replaceState(null, '', url);
    }
    postFollow();
    if (record && parts[part]) {
      var rid = parts[part].getAttribute('data-resource');
      var kind = parts[part].getAttribute('data-kind');
      if (changedPart) { usage('record', 'part-projected', rid, forClass()); }
      if (kind === 'pdf') { usage('record', 'pdf-page-viewed', rid, {page: page}); }
    }
  }

  /* The next (or previous) page or part; false at the lesson's end (or start). Going
     back, a task sheet's page is shown from its bottom, where the teacher left it. */
  function step(dir, fromEnd) {
    var part = at.part;
    var page = at.page + dir;
    if (page > pagesOf(part)) {
      if (part + 1 >= parts.length) { return false; }
      part += 1; page = 1;
    } else if (page < 1) {
      if (part === 0) { return false; }
      part -= 1; page = pagesOf(part);
    }
    show(part, page, true);
    var box = pdfBox();
    if (box) { box.scrollTop = fromEnd ? box.scrollHeight : 0; box.scrollLeft = 0; }
    return true;
  }

  /* ---- the video: play, seek, full screen, its time in big type ---- */
  function videoEl() { return parts[at.part] && parts[at.part].querySelector('video'); }

  function clock(t) {
    t = Math.max(0, Math.floor(t || 0));
    var s = t % 60;
    return Math.floor(t / 60) + ':' + (s < 10 ? '0' : '') + s;
  }

  var timeHide = null;
  function showTime() {
    var v = videoEl();
    var box = v && parts[at.part].querySelector('.video-time');
    if (!box) { return; }
    box.textContent = clock(v.currentTime) + ' / ' + clock(v.duration);
    box.hidden = false;
    if (timeHide) { clearTimeout(timeHide); }
    timeHide = setTimeout(function () { if (!v.paused) { box.hidden = true; } }, 3000);
  }

  function playPause() {
    var v = videoEl();
    if (!v) { return false; }
    if (v.paused) {
      var p = v.play();
      if (p && p.catch) { p.catch(function () {}); }
    } else {
      v.pause();
    }
    showTime();
    return true;
  }

  function seek(seconds) {
    var v = videoEl();
    if (!v) { return false; }
    var end = isFinite(v.duration) ? v.duration : v.currentTime + seconds;
    v.currentTime = Math.min(Math.max(v.currentTime + seconds, 0), end);
    showTime();
    return true;
  }

  function hasClass(el, name) { return (' ' + el.className + ' ').indexOf(' ' + name + ' ') >= 0; }
  function setClass(el, name, on) {
    var rest = (' ' + el.className + ' ').replace(' ' + name + ' ', ' ').replace(/^\s+|\s+$/g, '');
    el.className = on ? (rest ? rest + ' ' : '') + name : rest;
  }

  function fullScreen(on) {
    setClass(body, 'stage-full', typeof on === 'boolean' ? on : !hasClass(body, 'stage-full'));
    fitPdf();
    showTime();
  }

  /* ---- the exercise: show or hide the answer of the question on screen ---- */
  function question() { return parts[at.part] && parts[at.part].querySelector('.question:not([hidden])'); }

  function reveal(on) {
    var q = question();
    if (!q) { return false; }
    setClass(q, 'revealed', typeof on === 'boolean' ? on : !hasClass(q, 'revealed'));
    return true;
  }

  /* ---- the task sheet: fit to width, zoom, pan ---- */
  var zoom = 1;          // 1: the page as wide as the screen; 'page': the whole page
  function pdfBox() {
    var p = parts[at.part];
    return p && p.getAttribute('data-kind') === 'pdf' && p.querySelector('.pdf-page') ? p : null;
  }

  function fitPdf() {
    var box = pdfBox();
    if (!box) { return; }
    var imgs = box.querySelectorAll('.pdf-page');
    for (var i = 0; i < imgs.length; i++) {
      imgs[i].style.width = zoom === 'page' ? '' : (zoom * 100) + '%';
    }
    setClass(box, 'pdf-whole', zoom === 'page');
  }

  function setZoom(z) {
    var box = pdfBox();
    if (!box) { return false; }
    var oldW = box.scrollWidth, oldH = box.scrollHeight;
    var cx = box.scrollLeft + box.clientWidth / 2, cy = box.scrollTop + box.clientHeight / 2;
    zoom = z === 'page' ? 'page' : Math.min(Math.max(z, 1), 4);
    fitPdf();
    box.scrollLeft = cx * box.scrollWidth / oldW - box.clientWidth / 2;
    box.scrollTop = cy * box.scrollHeight / oldH - box.clientHeight / 2;
    return true;
  }

  /* Pan the page by a share of the screen; false at the edge (the caller then turns the page). */
  function pan(dx, dy) {
    var box = pdfBox();
    if (!box || zoom === 'page') { return false; }
    var l = box.scrollLeft, t = box.scrollTop;
    box.scrollLeft = l + dx * box.clientWidth;
    box.scrollTop = t + dy * box.clientHeight;
    return box.scrollLeft !== l || box.scrollTop !== t;
  }

  /* ---- the interactive: the app takes the keys until Tab leaves it ---- */
  function enterApp() {
    var f = parts[at.part] && parts[at.part].querySelector('iframe.lesson-app');
    if (!f) { return false; }
    f.focus();
    try { f.contentWindow.focus(); } catch (e) { /* another origin: the frame's focus is enough */ }
    return true;
  }

  /* ---- the end of a lesson: the next lesson ---- */
  var nextLesson = document.querySelector('[data-next-lesson]');

  function forward() {
    if (document.activeElement === nextLesson) { window.location.href = nextLesson.href; return; }
    if (pan(0, 0.85)) { return; }
    if (!step(1) && nextLesson) { focusItem(nextLesson); }
  }

  function back() {
    if (document.activeElement === nextLesson) { focusItem(tabs[at.part]); return; }
    if (pan(0, -0.85)) { return; }
    step(-1, true);
  }

  /* F5, Enter or Space: what the shown part does (clickers send F5 for "start slideshow"). */
  function action() {
    if (document.activeElement === nextLesson) { window.location.href = nextLesson.href; return; }
    if (playPause() || reveal()) { return; }
    if (pdfBox()) { setZoom(zoom === 'page' ? 1 : 'page'); return; }
    enterApp();
  }

  /* Esc first undoes what is on screen (a clicker's slideshow button sends F5 and Esc in
     turn), then goes up. */
  function undo() {
    var v = videoEl();
    var q = question();
    if (hasClass(body, 'qr-big')) {
      setClass(body, 'qr-big', false);
    } else if (hasClass(body, 'stage-full')) {
      fullScreen(false);
    } else if (pdfBox() && zoom !== 1) {
      setZoom(1);
    } else if (v && !v.paused) {
      playPause();
    } else if (q && hasClass(q, 'revealed')) {
      reveal(false);
    } else {
      goUp();
    }
  }

  function lessonKey(e) {
    var k = e.key;
    if (k === 'PageDown' || k === 'ArrowDown' || k === 'Down') {
      forward();
    } else if (k === 'PageUp' || k === 'ArrowUp' || k === 'Up') {
      back();
    } else if (k === 'ArrowRight' || k === 'Right') {
      if (!pan(0.5, 0)) { forward(); }
    } else if (k === 'ArrowLeft' || k === 'Left') {
      if (!pan(-0.5, 0)) { back(); }
    } else if (k === ' ' || k === 'Spacebar' || k === 'Enter' || k === 'F5') {
      action();
    } else if (k === 'j' || k === 'J') {
      seek(-5);
    } else if (k === 'l' || k === 'L') {
      seek(5);
    } else if (k === 'f' || k === 'F') {
      fullScreen();
    } else if (k === '+' || k === '=') {
      setZoom(zoom === 'page' ? 1 : zoom * 1.25);
    } else if (k === '-' || k === '_') {
      setZoom(zoom === 'page' || zoom <= 1 ? 'page' : zoom / 1.25);
    } else if (k === '0') {
      setZoom(1);
    } else if (k === 'Home') {
      show(0, 1, true);
    } else if (k === 'q' || k === 'Q') {
      setClass(body, 'qr-big', !hasClass(body, 'qr-big'));
    } else {
      return false;
    }
    return true;
  }

  /* A text field (a class's other name, a questionnaire's short answer) takes letters
     as text: B, E, Q and Backspace are typing there, not the projector's keys. */
  function typing(el) {
    if (!el || !el.tagName) { return false; }
    if (el.tagName === 'TEXTAREA' || el.isContentEditable) { return true; }
    return el.tagName === 'INPUT' &&
      !/^(hidden|radio|checkbox|submit|button|reset|image)$/i.test(el.type || 'text');
  }

  document.addEventListener('keydown', function (e) {
    if (e.ctrlKey || e.altKey || e.metaKey) { return; }
    var k = e.key;
    if (typing(e.target)) {
      // Esc leaves the field (the keys work again); everything else is the field's.
      if (k === 'Escape' || k === 'Esc') { e.target.blur(); e.preventDefault(); }
      return;
    }
    if (!blank.hidden) {
      // Blanked: any key brings the picture back and does nothing else.
      toggleBlank(false);
      e.preventDefault();
      return;
    }
    var lang = document.querySelector('[data-lang]');
    if (k === 'b' || k === 'B' || k === '.') {
      toggleBlank(true);
    } else if ((k === 'e' || k === 'E') && lang) {
      // The other language, back on this very screen (part and page included).
      window.location.href = lang.pathname + '?next=' +
        encodeURIComponent(window.location.pathname + window.location.search);
    } else if (lessonEl && (k === 'Escape' || k === 'Esc' || k === 'Backspace')) {
      undo();
    } else if (k === 'Escape' || k === 'Esc' || k === 'Backspace') {
      goUp();
    } else if (!lessonEl && k === 'F5') {
      // "Start slideshow" on a clicker: open the tile in focus (F5 reloads nothing here).
      if (document.activeElement && document.activeElement.href) {
        window.location.href = document.activeElement.href;
      }
    } else if (!(lessonEl ? lessonKey(e) : browseKey(e))) {
      return;
    }
    e.preventDefault();
  });

  // The interactive has the keyboard: ring it. Tab out of it comes back here, where the
  // clicker's keys work again.
  window.addEventListener('blur', function () {
    setTimeout(function () {
      var a = document.activeElement;
      setClass(body, 'app-has-keys', !!a && a.tagName === 'IFRAME');
    }, 0);
  });
  window.addEventListener('focus', function () {
    setClass(body, 'app-has-keys', false);
    if (lessonEl && document.activeElement === document.body) { focusItem(tabs[at.part]); }
  });
  var videos = document.querySelectorAll('section.part video');
  for (var vi = 0; vi < videos.length; vi++) {
    videos[vi].addEventListener('pause', showTime);
    videos[vi].addEventListener('seeked', showTime);
  }

  /* ---- start ---- */
  if (lessonEl) {
    readPosition();
    show(at.part, at.page, false);
    usage('projectedStart', lessonEl.getAttribute('data-usage-lesson'));
    // The part on screen when the lesson opens is projected too.
    if (parts[at.part]) { usage('record', 'part-projected', parts[at.part].getAttribute('data-resource'), forClass()); }
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
