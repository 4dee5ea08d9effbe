/* Ketang usage events: what is opened, watched, read, answered and projected.
 * ES5, no framework: runs on a 2016 Android browser. The page says what it shows with
 * data attributes (the contract is in docs/usage.md); this script turns them into
 * events, keeps unsent ones in localStorage and posts them to /api/v1/usage in batches.
 * No names: the only id is a random one made for this browser. */
(function (window, document) {
  'use strict';
  var ENDPOINT = '/api/v1/usage';
  var KEY_ID = 'ketang.usage.tablet', KEY_QUEUE = 'ketang.usage.queue',
      KEY_PROJ = 'ketang.usage.projected';
  var BATCH = 50, MAX_QUEUE = 2000, SOON = 2000, MAX_WAIT = 300000;
  var mem = {};
  var queue, actor, view, ctx = {}, timer = null, sending = false, wait = SOON;

  function get(k) {
    try { return window.localStorage.getItem(k); } catch (e) { return mem[k] || null; }
  }
  function put(k, v) {
    try { window.localStorage.setItem(k, v); } catch (e) { mem[k] = v; }
  }
  function uuid() {
    var b = [], i, c = window.crypto || window.msCrypto, h = '';
    if (c && c.getRandomValues && window.Uint8Array) {
      b = c.getRandomValues(new Uint8Array(16));
    } else {
      for (i = 0; i < 16; i++) { b[i] = Math.floor(Math.random() * 256); }
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    for (i = 0; i < 16; i++) {
      h += (b[i] + 0x100).toString(16).substr(1);
      if (i === 3 || i === 5 || i === 7 || i === 9) { h += '-'; }
    }
    return h;
  }
  function load() {
    try { return JSON.parse(get(KEY_QUEUE) || '[]') || []; } catch (e) { return []; }
  }
  function save() {
    if (queue.length > MAX_QUEUE) { queue.splice(0, queue.length - MAX_QUEUE); }
    put(KEY_QUEUE, JSON.stringify(queue));
  }
  function attr(el, name) { return el ? el.getAttribute(name) : null; }
  function pageView() {
    return attr(document.body, 'data-view') === 'projector' ? 'projector' : 'tablet';
  }
  function num(x) { return Math.round((x || 0) * 10) / 10; }

  /* Record one event; resourceId defaults to the page's lesson. */
  function record(type, resourceId, extra) {
    var ev = {
      id: uuid(), type: type, time: new Date().toISOString(), actor: actor,
      view: view || pageView(),
      resource: resourceId || ctx.lesson, extra: extra || {}
    };
    if (!ev.resource) { return null; }
    if (ctx.lesson) { ev.lesson = ctx.lesson; }
    if (ctx.channel) { ev.channel = ctx.channel; }
    if (ctx.version) { ev.version = ctx.version; }
    queue.push(ev);
    save();
    schedule(SOON);
    return ev.id;
  }

  function schedule(ms) {
    if (timer) { return; }
    timer = window.setTimeout(function () { timer = null; flush(); }, ms);
  }

  function drop(ids) {
    var keep = [], i;
    for (i = 0; i < queue.length; i++) {
      if (!ids[queue[i].id]) { keep.push(queue[i]); }
    }
    queue = keep;
    save();
  }

  /* Post the oldest batch now; on failure keep it and try again later (backing off). */
  function flush() {
    if (sending || !queue.length) { return; }
    var batch = queue.slice(0, BATCH), xhr = new XMLHttpRequest(), ids = {}, i;
    for (i = 0; i < batch.length; i++) { ids[batch[i].id] = true; }
    sending = true;
    xhr.open('POST', ENDPOINT, true);
    xhr.setRequestHeader('Content-Type', 'application/json');
    xhr.onreadystatechange = function () {
      if (xhr.readyState !== 4) { return; }
      sending = false;
      var s = xhr.status, bad = null;
      if (s >= 200 && s < 300) {
        drop(ids);
        wait = SOON;
        if (queue.length) { schedule(10); }
        return;
      }
      if (s === 400) {
        try { bad = JSON.parse(xhr.responseText).error.event; } catch (e) { bad = null; }
        if (typeof bad === 'number' && batch[bad]) {
          var one = {};
          one[batch[bad].id] = true;
          drop(one); /* that event can never be stored; the rest goes again */
          schedule(10);
          return;
        }
      }
      if (s >= 400 && s < 500 && s !== 408 && s !== 429) {
        drop(ids); /* refused for good (usage off, too large): do not retry forever */
        return;
      }
      wait = Math.min(MAX_WAIT, wait * 2);
      schedule(wait);
    };
    xhr.send(JSON.stringify({events: batch, sent_at: new Date().toISOString()}));
  }

  /* On leaving the page: hand the oldest batch to the browser. It stays queued too;
   * the server ignores an id it already has, so sending it again is harmless. */
  function beacon() {
    if (!queue.length || !window.navigator.sendBeacon) { return; }
    window.navigator.sendBeacon(ENDPOINT, JSON.stringify(
      {events: queue.slice(0, BATCH), sent_at: new Date().toISOString()}));
  }

  function projectedStart(resourceId) {
    put(KEY_PROJ, JSON.stringify({start: new Date().getTime(),
                                  resource: resourceId || ctx.lesson}));
  }
  function projectedEnd() {
    var p = null;
    try { p = JSON.parse(get(KEY_PROJ) || 'null'); } catch (e) { p = null; }
    put(KEY_PROJ, 'null');
    if (!p || !p.start) { return null; }
    var secs = Math.min(86400, Math.max(0, (new Date().getTime() - p.start) / 1000));
    return record('projected', p.resource, {seconds: num(secs)});
  }

  function each(selector, fn) {
    var list = document.querySelectorAll(selector), i;
    for (i = 0; i < list.length; i++) { fn(list[i]); }
  }

  function watchVideo(v) {
    var res = attr(v, 'data-usage-resource'), last = null, acc = 0;
    var every = parseFloat(attr(document.body, 'data-usage-progress-seconds')) || 30;
    function info(extra) {
      extra = extra || {};
      extra.position = num(v.currentTime);
      if (v.duration && isFinite(v.duration)) { extra.duration = num(v.duration); }
      return extra;
    }
    function tick() {
      var t = v.currentTime;
      if (last !== null && t > last && t - last < 3) { acc += t - last; }
      last = t;
    }
    v.addEventListener('play', function () { last = v.currentTime; record('video-played', res, info()); });
    v.addEventListener('timeupdate', function () {
      tick();
      if (acc >= every) { record('video-progress', res, info({seconds: num(acc)})); acc = 0; }
    });
    v.addEventListener('pause', function () {
      tick();
      if (!v.ended) { record('video-paused', res, info({seconds: num(acc)})); acc = 0; }
      last = null;
    });
    v.addEventListener('ended', function () {
      tick();
      record('video-completed', res, info({seconds: num(acc)}));
      acc = 0;
      last = null;
    });
  }

  function watchPages() {
    var seen = {}, els = [];
    each('[data-usage-pdf-page]', function (el) { els.push(el); });
    if (!els.length) { return; }
    function saw(el) {
      var res = attr(el, 'data-usage-resource'), page = parseInt(attr(el, 'data-usage-pdf-page'), 10);
      var key = res + '#' + page;
      if (seen[key] || !(page >= 1)) { return; }
      seen[key] = true;
      record('pdf-page-viewed', res, {page: page});
    }
    if (window.IntersectionObserver) {
      var io = new window.IntersectionObserver(function (entries) {
        for (var i = 0; i < entries.length; i++) {
          if (entries[i].isIntersecting) { saw(entries[i].target); }
        }
      }, {threshold: 0.5});
      for (var i = 0; i < els.length; i++) { io.observe(els[i]); }
      return;
    }
    var check = function () {
      var h = window.innerHeight || document.documentElement.clientHeight;
      for (var j = 0; j < els.length; j++) {
        var r = els[j].getBoundingClientRect();
        if (r.bottom > 0 && r.top < h) { saw(els[j]); }
      }
    };
    window.addEventListener('scroll', function () { window.setTimeout(check, 200); });
    check();
  }

  /* app-opened once someone uses the interactive: focus moves into its frame (a click,
     a tap or a key), which the page sees as its own window losing focus to it. */
  function watchApp(f) {
    var done = false;
    function used() {
      if (!done) { done = true; record('app-opened', attr(f, 'data-usage-resource'), {}); }
    }
    window.addEventListener('blur', function () {
      window.setTimeout(function () { if (document.activeElement === f) { used(); } }, 0);
    });
    f.addEventListener('focus', used);
  }

  function watchForm(f) {
    var res = attr(f, 'data-usage-exercise'), started = false;
    function start() {
      if (!started) { started = true; record('exercise-attempted', res, {}); }
    }
    f.addEventListener('change', start);
    f.addEventListener('submit', function () {
      start();
      var chosen = f.querySelector('input:checked'), extra = {}, c = attr(chosen, 'data-correct');
      if (c === 'true' || c === 'false') { extra.correct = c === 'true'; }
      record('exercise-answered', res, extra);
      beacon();
    });
  }

  function init() {
    view = pageView();
    var les = document.querySelector('[data-usage-lesson]');
    if (les) {
      ctx.lesson = attr(les, 'data-usage-lesson');
      ctx.channel = attr(les, 'data-usage-channel') || undefined;
      ctx.version = parseInt(attr(les, 'data-usage-version'), 10) || undefined;
      record('lesson-opened', ctx.lesson, {});
    }
    each('video[data-usage-resource]', watchVideo);
    each('iframe[data-usage-resource]', watchApp);
    each('form[data-usage-exercise]', watchForm);
    watchPages();
    window.addEventListener('pagehide', beacon);
    window.addEventListener('online', function () { wait = SOON; flush(); });
    if (queue.length) { schedule(SOON); }
  }

  queue = load();
  actor = get(KEY_ID);
  if (!actor) { actor = uuid(); put(KEY_ID, actor); }
  window.ketangUsage = {
    record: record, flush: flush, projectedStart: projectedStart,
    projectedEnd: projectedEnd,
    tabletId: function () { return actor; },
    pending: function () { return queue.length; }
  };
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
}(window, document));
