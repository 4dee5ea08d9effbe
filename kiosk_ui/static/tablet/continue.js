/* Ketang tablet pages: "continue" — lessons this tablet left unfinished (a video
   started and not watched to the end), kept in this browser's localStorage only,
   like video resume. ES5, no framework; without it the block stays hidden. */
(function () {
  var KEY = 'ketang.unfinished', MAX = 5, store;
  try { store = window.localStorage; store.getItem(KEY); } catch (e) { return; }
  function load() {
    try { var v = JSON.parse(store.getItem(KEY) || '[]'); return v instanceof Array ? v : []; }
    catch (e) { return []; }
  }
  function save(list) { try { store.setItem(KEY, JSON.stringify(list.slice(0, MAX))); } catch (e) {} }
  function without(list, url) {
    var out = [];
    for (var i = 0; i < list.length; i++) { if (list[i].url !== url) { out.push(list[i]); } }
    return out;
  }
  var here = location.pathname;
  var h1 = document.getElementsByTagName('h1')[0];
  var title = h1 ? (h1.textContent || '').replace(/\s+/g, ' ').slice(0, 120) : here;
  var list = load();
  var box = document.querySelector('[data-continue]');
  var shown = without(list, here);
  if (box && shown.length) {
    var ul = box.getElementsByTagName('ul')[0];
    for (var i = 0; i < shown.length; i++) {
      var li = document.createElement('li'), a = document.createElement('a');
      a.href = shown[i].url; a.appendChild(document.createTextNode(shown[i].title));
      li.appendChild(a); ul.appendChild(li);
    }
    box.removeAttribute('hidden');
  }
  var videos = document.getElementsByTagName('video');
  for (var j = 0; j < videos.length; j++) {
    videos[j].addEventListener('play', function () {
      save([{url: here, title: title}].concat(without(load(), here)));
    }, false);
    videos[j].addEventListener('ended', function () { save(without(load(), here)); }, false);
  }
})();
