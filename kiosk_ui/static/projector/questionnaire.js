/* A questionnaire on the projector, answered with the keys only (docs/projector.md,
   "Questionnaires"). projector.js moves the focus over the tiles; here Enter, Space or
   a clicker's F5 chooses the choice in focus (a radio: this one; a checkbox: on or
   off) or sends the form from the "Send" tile. In a short-text field the keyboard
   types (PageUp/PageDown still move on, Esc leaves the field). Without JavaScript the
   form is plain radios, checkboxes and a submit button. ES5, no dependencies. */
(function () {
  'use strict';
  var form = document.getElementById('questionnaire');
  if (!form) { return; }
  var choices = Array.prototype.slice.call(form.querySelectorAll('label.q-choice'));

  function paint() {
    for (var i = 0; i < choices.length; i++) {
      var input = choices[i].querySelector('input');
      var rest = choices[i].className.replace(/\s*\bon\b/g, '');
      choices[i].className = input.checked ? rest + ' on' : rest;
      choices[i].setAttribute('aria-checked', input.checked ? 'true' : 'false');
    }
  }

  function nextItem(from) {
    var list = Array.prototype.slice.call(document.querySelectorAll('[data-nav]'));
    var i = list.indexOf(from);
    return list[Math.min(i + 1, list.length - 1)];
  }

  form.addEventListener('change', paint);
  paint();

  document.addEventListener('keydown', function (e) {
    if (e.ctrlKey || e.altKey || e.metaKey) { return; }
    var el = document.activeElement;
    var k = e.key;
    var choose = k === 'Enter' || k === ' ' || k === 'Spacebar' || k === 'F5';
    if (!choose || !el) { return; }
    if (el.tagName === 'LABEL' && el.className.indexOf('q-choice') >= 0) {
      e.preventDefault();
      el.querySelector('input').click();
      paint();
    } else if (k === 'F5' && el.tagName === 'BUTTON' && el.type === 'submit') {
      e.preventDefault();
      el.click();
    }
  });

  // Typing in a short-text field is text, not the projector's keys.
  var texts = form.querySelectorAll('textarea');
  for (var t = 0; t < texts.length; t++) {
    texts[t].addEventListener('keydown', function (e) {
      var k = e.key;
      if (k === 'PageDown' || k === 'PageUp' || k === 'Tab') { return; }
      e.stopPropagation();
      if (k === 'Escape' || k === 'Esc' || k === 'F5') {
        e.preventDefault();
        var n = nextItem(this);
        if (n) { n.focus(); }
      }
    });
  }
}());
