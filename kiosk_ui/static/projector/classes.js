/* The class screen's one key of its own: M marks the lesson in focus taught, or not
   taught when it is (docs/projector.md). Without JavaScript the form below does it. */
(function () {
  'use strict';
  var form = document.getElementById('mark');
  if (!form) { return; }
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
}());
