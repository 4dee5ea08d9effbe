/* "Follow the teacher" for the tablet pages (docs/projector.md). Include it once:
     <script src="/ui/projector/follow.js" defer></script>
   It offers following when the page was opened from the projector's QR code (?follow=1)
   or shows the lesson the projector shows; while following, the tablet opens the lesson
   and scrolls to the part the projector shows. "Leave" stops it. ES5, no dependencies;
   server-sent events where the browser has EventSource, else a poll. */
(function () {
  'use strict';
  if (window.ketangFollow) { return; }
  var KEY = 'ketang-follow';
  var STATE_URL = '/projector/follow/state';
  var POLL_MS = 3000;
  var here = /\/lessons\/([^\/?#]+)\/([^\/?#]+)(?:\/pdf\/([^\/?#]+))?/.exec(window.location.pathname);
  var current = here ? {channel: decodeURIComponent(here[1]), lesson: decodeURIComponent(here[2])} : null;
  // On the task sheet reader: which sheet, which page, one page or all of them.
  var reader = here && here[3] ? {
    resource: decodeURIComponent(here[3]),
    page: parseInt((/[?&]page=(\d+)/.exec(window.location.search) || [0, '1'])[1], 10),
    all: /[?&]all=1/.test(window.location.search)
  } : null;
  var param = /[?&]follow=([^&#]*)/.exec(window.location.search);
  var labels = {offer: '', follow: 'Follow', following: 'Following', leave: 'Leave'};
  var following = false;
  var source = null;
  var timer = null;
  var bar = null;
  var lastSeq = -1;
  var api = window.ketangFollow = {};

  function stored(value) {
    try {
      if (value === undefined) { return window.sessionStorage.getItem(KEY); }
      if (value === null) { window.sessionStorage.removeItem(KEY); } else { window.sessionStorage.setItem(KEY, value); }
    } catch (e) { /* private mode on an old browser: the URL carries it instead */ }
    return null;
  }

  function get(url, done) {
    var xhr = new XMLHttpRequest();
    xhr.open('GET', url);
    xhr.onload = function () {
      if (xhr.status === 200) {
        try { done(JSON.parse(xhr.responseText)); } catch (e) { /* ignore a bad answer */ }
      }
    };
    xhr.send();
  }

  function style() {
    var css = '#ketang-follow{position:fixed;left:0;right:0;bottom:0;z-index:1000;display:flex;' +
      'align-items:center;gap:12px;padding:10px 14px;background:#13314f;color:#fff;' +
      'font-size:18px;box-shadow:0 -2px 8px rgba(0,0,0,.3)}' +
      '#ketang-follow span{flex:1}#follow [data-follow-text]:empty{display:none}' +
      '#ketang-follow button{font-size:18px;padding:8px 16px;border:0;border-radius:6px;' +
      'background:#ffd400;color:#000;font-weight:bold}' +
      '.ketang-followed{outline:4px solid #ffd400;outline-offset:4px}' +
      // While following, the page's own box stays in view (so Leave is always there).
      '#follow.ketang-following{position:fixed;left:0;right:0;bottom:0;z-index:1000;margin:0;' +
      'border-radius:0;box-shadow:0 -2px 8px rgba(0,0,0,.3)}' +
      'body.ketang-following{padding-bottom:140px}';
    var el = document.createElement('style');
    el.appendChild(document.createTextNode(css));
    document.getElementsByTagName('head')[0].appendChild(el);
  }

  function toggleClass(el, name, on) {
    var rest = (' ' + el.className + ' ').replace(' ' + name + ' ', ' ').replace(/^\s+|\s+$/g, '');
    el.className = on ? (rest ? rest + ' ' : '') + name : rest;
  }

  /* The bar: the tablet page's own follow box (#follow with [data-follow-start] and
     [data-follow-stop] links) when it has one, else one made here. */
  function ensureBar() {
    if (bar) { return; }
    var theirs = document.getElementById('follow');
    if (theirs && theirs.querySelector('[data-follow-start]')) {
      bar = theirs;
      bar.text = document.createElement('p');
      bar.text.setAttribute('data-follow-text', '');
      bar.text.style.fontWeight = 'bold';
      var first = bar.querySelector('[data-follow-start]');
      first.parentNode.insertBefore(bar.text, first);
    } else {
      bar = document.createElement('div');
      bar.id = 'ketang-follow';
      bar.setAttribute('role', 'region');
      bar.text = document.createElement('span');
      bar.appendChild(bar.text);
      var start = document.createElement('button');
      start.type = 'button';
      start.setAttribute('data-follow-start', '');
      start.textContent = labels.follow;
      var stop = document.createElement('button');
      stop.type = 'button';
      stop.setAttribute('data-follow-stop', '');
      stop.textContent = labels.leave;
      bar.appendChild(start);
      bar.appendChild(stop);
      document.body.appendChild(bar);
    }
    bar.start = bar.querySelector('[data-follow-start]');
    bar.stop = bar.querySelector('[data-follow-stop]');
    // The page hides them (following needs this script); now they work.
    bar.start.removeAttribute('hidden');
    bar.stop.removeAttribute('hidden');
    bar.start.onclick = function (e) { if (e && e.preventDefault) { e.preventDefault(); } join(); };
    bar.stop.onclick = function (e) { if (e && e.preventDefault) { e.preventDefault(); } leave(); };
  }

  function render(show) {
    ensureBar();
    bar.style.display = show ? '' : 'none';
    bar.setAttribute('data-follow-state', following ? 'following' : 'offered');
    bar.start.style.display = following ? 'none' : '';
    bar.stop.style.display = following ? '' : 'none';
    bar.text.textContent = following ? labels.following : (bar.id === 'follow' ? '' : labels.offer);
    toggleClass(bar, 'ketang-following', following);
    toggleClass(document.body, 'ketang-following', following);
  }

  function mark(box) {
    var old = document.querySelectorAll('.ketang-followed');
    for (var i = 0; i < old.length; i++) { old[i].className = old[i].className.replace(/\s*ketang-followed/g, ''); }
    box.className += ' ketang-followed';
    try { box.scrollIntoView({behavior: 'smooth', block: 'start'}); } catch (e) { box.scrollIntoView(true); }
  }

  /* The element of the part the projector shows: the video's section, the exercise's
     current question, the task sheet's page (on the reader showing every page). */
  function scrollTo(state) {
    var sel = '[data-usage-resource="' + state.resource + '"]';
    var el = null;
    if (state.kind === 'pdf') { el = document.querySelector(sel + '[data-usage-pdf-page="' + state.page + '"]'); }
    if (state.kind === 'exercise') {
      var form = document.querySelector('[data-usage-exercise="' + state.resource + '"]');
      var qs = form ? form.querySelectorAll('.questions > li') : [];
      el = qs[(state.page || 1) - 1] || form;
    }
    el = el || document.querySelector(sel) ||
      document.querySelector('[data-usage-exercise="' + state.resource + '"]');
    if (!el) { return; }
    if (el.tagName !== 'LI') {
      el = el.parentNode && (el.parentNode.tagName === 'SECTION' || el.parentNode.tagName === 'FIGURE') ?
        el.parentNode : el;
    }
    mark(el);
  }

  function followParam() { return stored() === '1' ? 'follow=1' : 'follow=on'; }

  /* Where the tablet shows the projector's part: a task sheet's page on the reader (one
     page at a time), anything else on the lesson page. */
  function target(state) {
    var lesson = '/lessons/' + encodeURIComponent(state.channel) + '/' + encodeURIComponent(state.lesson);
    if (state.kind === 'pdf' && state.resource) {
      if (reader && reader.resource === state.resource && (reader.all || reader.page === (state.page || 1))) {
        return null;
      }
      return lesson + '/pdf/' + encodeURIComponent(state.resource) + '?page=' + (state.page || 1) +
        '&' + followParam();
    }
    if (reader || !current || current.channel !== state.channel || current.lesson !== state.lesson) {
      return lesson + '?' + followParam();
    }
    return null;
  }

  function apply(state) {
    if (!state || typeof state.seq !== 'number') { return; }
    api.state = state;
    if (!following || !state.lesson || state.seq === lastSeq) { return; }
    lastSeq = state.seq;
    // ?follow=1 offers following on the next page; sessionStorage says we follow
    // (?follow=on says it where storage is unavailable).
    var go = target(state);
    if (go) { window.location.href = go; return; }
    if (state.resource) { scrollTo(state); }
  }

  function connect() {
    if (window.EventSource) {
      source = new window.EventSource('/projector/follow/events');
      // The server answers and closes at once; EventSource reconnects after its retry.
      source.addEventListener('state', function (e) {
        try { apply(JSON.parse(e.data)); } catch (err) { /* ignore */ }
      });
    } else {
      timer = setInterval(function () { get(STATE_URL, function (doc) { apply(doc.state); }); }, POLL_MS);
    }
  }

  function disconnect() {
    if (source) { source.close(); source = null; }
    if (timer) { clearInterval(timer); timer = null; }
  }

  function join() {
    following = true;
    lastSeq = -1;
    stored('1');
    render(true);
    connect();
  }

  function leave() {
    following = false;
    stored(null);
    disconnect();
    if (window.history && history.replaceState && param) {
      history.replaceState(null, '', window.location.pathname);
    }
    render(true);
  }

  api.join = join;
  api.leave = leave;
  api.following = function () { return following; };

  function start() {
    get(STATE_URL, function (doc) {
      labels = doc.labels || labels;
      var state = doc.state || {};
      var teacherHere = current && state.channel === current.channel && state.lesson === current.lesson;
      following = stored() === '1' || (param && param[1] === 'on');
      style();
      render(following || !!param || !!teacherHere);
      if (following) { connect(); }
    });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
}());
