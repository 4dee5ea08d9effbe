/* Live class answers (docs/tablet.md): while this tablet follows the teacher and the
   projector shows a question of an exercise on this page, choosing an answer sends it
   to the device at once (anonymous: the tablet's pseudonymous id, one answer per
   question; the first counts). The question then says it was sent, and which answer
   was kept. Without JavaScript, or when not following, the exercise works as a form.
   ES5, no dependencies. */
(function () {
  'use strict';
  if (window.ketangAnswer) { return; }
  var api = window.ketangAnswer = {sent: 0};
  var URL = '/api/v1/answers';
  var LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

  function tabletId() {
    var u = window.ketangUsage;
    if (u && typeof u.tabletId === 'function') { return u.tabletId(); }
    var id = null;
    try { id = window.localStorage.getItem('ketang-answer-tablet'); } catch (e) { /* private mode */ }
    if (!id) {
      id = 'tab-' + Math.random().toString(36).slice(2, 12) + '-' + new Date().getTime().toString(36);
      try { window.localStorage.setItem('ketang-answer-tablet', id); } catch (e2) { /* ignore */ }
    }
    return id;
  }

  function following() { return /(^|\s)ketang-following(\s|$)/.test(document.body.className); }

  function say(li, form, text, kept) {
    var box = li.querySelector('.live-answer');
    if (!box) {
      box = document.createElement('p');
      box.className = 'live-answer';
      box.setAttribute('role', 'status');
      li.appendChild(box);
    }
    box.textContent = text;
    if (kept !== null && kept !== undefined) {
      var radios = li.querySelectorAll('input[type=radio]');
      for (var i = 0; i < radios.length; i++) {
        if (parseInt(radios[i].value, 10) === kept) { radios[i].checked = true; }
        radios[i].disabled = true;
      }
    }
  }

  function send(body, li, form, tries) {
    var xhr = new XMLHttpRequest();
    xhr.open('POST', URL);
    xhr.setRequestHeader('Content-Type', 'application/json');
    xhr.onload = function () {
      var doc = null;
      try { doc = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 200 && doc) {
        api.sent += 1;
        var words = doc.counted ? form.getAttribute('data-live-sent') :
          form.getAttribute('data-live-kept') + ' ' + LETTERS.charAt(doc.choice);
        say(li, form, words, doc.choice);
      } else if (xhr.status >= 500 || xhr.status === 429) {
        retry(body, li, form, tries);
      } else {
        say(li, form, (doc && doc.error && doc.error.message) || String(xhr.status), null);
      }
    };
    xhr.onerror = function () { retry(body, li, form, tries); };
    xhr.send(JSON.stringify(body));
  }

  /* Not acknowledged: the answer is not kept yet, so send it again (a repeat counts once). */
  function retry(body, li, form, tries) {
    if (tries >= 8) { say(li, form, form.getAttribute('data-live-failed'), null); return; }
    setTimeout(function () { send(body, li, form, tries + 1); }, Math.min(16000, 1000 * Math.pow(2, tries)));
  }

  document.addEventListener('change', function (e) {
    var input = e.target;
    if (!input || input.type !== 'radio' || !input.form) { return; }
    var form = input.form;
    var resource = form.getAttribute('data-usage-exercise');
    var st = window.ketangFollow && window.ketangFollow.state;
    if (!resource || !following() || !st || !st.round || st.resource !== resource) { return; }
    var q = parseInt(String(input.name).replace(/^q/, ''), 10);
    var li = input.parentNode;
    while (li && li.tagName !== 'LI') { li = li.parentNode; }
    if (isNaN(q) || !li) { return; }
    send({round: st.round, tablet: tabletId(), channel: st.channel, lesson: st.lesson,
          resource: resource, question: q, choice: parseInt(input.value, 10)}, li, form, 0);
  });
}());
