/* Ketang tablet pages: resume each video where this tablet left it (localStorage,
   one key per resource). ES5 only, no framework: the page works without it. */
(function () {
  var store;
  try {
    store = window.localStorage;
    store.setItem('ketang.test', '1');
    store.removeItem('ketang.test');
  } catch (e) {
    return; /* private mode or an old browser: videos simply start at the beginning */
  }
  var MARGIN = 1; /* seconds: too close to either end is not worth resuming */

  function keep(video) {
    var id = video.getAttribute('data-usage-resource');
    if (!id) { return; }
    var key = 'ketang.resume.' + id;
    var pending = parseFloat(store.getItem(key)) || 0;
    var lastSaved = -1;

    function restore() {
      if (pending >= MARGIN && (!video.duration || pending < video.duration - MARGIN)) {
        try { video.currentTime = pending; } catch (e) { /* not seekable yet */ }
      }
      pending = 0;
    }
    function save() {
      if (pending) { return; } /* not restored yet: keep what was saved */
      var t = video.currentTime;
      try {
        if (video.ended || t < MARGIN) {
          store.removeItem(key);
        } else {
          store.setItem(key, String(Math.round(t * 10) / 10));
        }
      } catch (e) { /* storage full: nothing to do */ }
      lastSaved = t;
    }
    if (video.readyState >= 1) { restore(); } else {
      video.addEventListener('loadedmetadata', restore, false);
    }
    video.addEventListener('timeupdate', function () {
      if (Math.abs(video.currentTime - lastSaved) >= 2) { save(); }
    }, false);
    video.addEventListener('pause', save, false);
    video.addEventListener('seeked', save, false);
    video.addEventListener('ended', save, false);
    window.addEventListener('pagehide', save, false);
  }

  var videos = document.getElementsByTagName('video');
  for (var i = 0; i < videos.length; i++) { keep(videos[i]); }
})();
