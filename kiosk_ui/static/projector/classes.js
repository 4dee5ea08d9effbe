/* The projector's classes and live answers (docs/projector.md, "Classes" and "Live class
   answers"). On a class page, M marks the lesson in focus taught, or not taught when it
   is (without JavaScript the form under the map does it). On a lesson, while an
   exercise question is on screen, the count of tablets that answered it is read every
   second; each choice's bar (shown when the answer is revealed) gets its count and
   share. ES5, no dependencies. */
(function () {
  'use strict';
  var POLL_MS = 1000;

  var form = document.getElementById('mark');
  if (form) {
    document.addEventListener('keydown', function (e) {
      if (e.ctrlKey || e.altKey || e.metaKey || (e.key !== 'm' && e.key !== 'M')) { return; }
      var el = document.activeElement;
      var lesson = el && el.getAttribute && el.getAttribute('data-lesson');
      if (!lesson) { return; }
      e.preventDefault();
      form.elements.lesson.value = lesson;
      var taught = document.createElement('input');
      taught.type = 'hidden';
      taught.name = 'taught';
      taught.value = el.getAttribute('data-taught') === '1' ? '0' : '1';
      form.appendChild(taught);
      form.submit();
    });
  }

  var main = document.querySelector('main.lesson[data-answers]');
  if (!main) { return; }

  function show(q, doc) {
    var box = q.querySelector('.live-count');
    if (box) {
      box.querySelector('.n').textContent = String(doc.answered);
      box.hidden = !doc.answered;
    }
    q.className = q.className.replace(/\s*has-answers/g, '') + (doc.answered ? ' has-answers' : '');
    var rows = q.querySelectorAll('.choices > li');
    for (var i = 0; i < rows.length; i++) {
      var count = doc.counts[i] || 0;
      var share = doc.shares[i] || 0;
      rows[i].setAttribute('data-count', String(count));
      var fill = rows[i].querySelector('.live-bar .fill');
      var label = rows[i].querySelector('.live-bar .n');
      if (fill) { fill.style.width = (share * 100) + '%'; }
      if (label) { label.textContent = count + ' · ' + Math.round(share * 100) + '%'; }
    }
  }

  function poll() {
    if (document.hidden) { return; }
    var part = main.querySelector('section.part[data-kind="exercise"]:not([hidden])');
    var q = part && part.querySelector('.question:not([hidden])');
    if (!q || !q.querySelector('.live')) { return; }
    var question = (parseInt(q.getAttribute('data-page'), 10) || 1) - 1;
    var url = main.getAttribute('data-answers') +
      '?round=' + encodeURIComponent(main.getAttribute('data-round') || '') +
      '&channel=' + encodeURIComponent(main.getAttribute('data-usage-channel')) +
      '&lesson=' + encodeURIComponent(main.getAttribute('data-usage-lesson')) +
      '&resource=' + encodeURIComponent(part.getAttribute('data-resource')) +
      '&question=' + question;
    var xhr = new XMLHttpRequest();
    xhr.open('GET', url);
    xhr.onload = function () {
      if (xhr.status !== 200) { return; }
      try { show(q, JSON.parse(xhr.responseText)); } catch (e) { /* keep the last figures */ }
    };
    xhr.send();
  }
  setInterval(poll, POLL_MS);
  poll();
}());
