/* Ketang sample interactive: plain ES5, works offline, no network access. */
(function () {
  var data = window.KETANG_DATA;
  var app = document.getElementById('app');

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.appendChild(document.createTextNode(String(text))); }
    return node;
  }
  function add(parent, child) { parent.appendChild(child); return child; }
  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }
  function setText(node, text) { clear(node); node.appendChild(document.createTextNode(text)); }
  function button(label, cls, onClick) {
    var b = el('button', cls || 'btn', label);
    b.type = 'button';
    b.onclick = onClick;
    return b;
  }
  function say(box, ok, extra) {
    box.className = 'feedback ' + (ok ? 'ok' : 'no');
    setText(box, (ok ? '答对了！Well done! ' : '再想一想。Try again. ') + (extra || ''));
  }

  function cards() {
    var seen = {}, count = 0, i;
    var grid = add(app, el('div', 'grid'));
    var detail = add(app, el('div', 'detail', '点一点卡片。Tap a card.'));
    var progress = add(app, el('p', 'hint'));
    function show(item, idx, node) {
      node.className = 'card seen';
      clear(detail);
      add(detail, el('div', 'big', item[0]));
      add(detail, el('div', 'pinyin', item[1]));
      add(detail, el('div', '', item[2]));
      add(detail, el('div', 'en', item[3]));
      if (!seen[idx]) { seen[idx] = true; count += 1; }
      setText(progress, '已学习 ' + count + ' / ' + data.items.length + ' learned');
    }
    function makeCard(item, idx) {
      var node = add(grid, button(item[0], 'card', function () { show(item, idx, node); }));
    }
    for (i = 0; i < data.items.length; i++) { makeCard(data.items[i], i); }
  }

  function counting() {
    var index = 0;
    var board = add(app, el('div', 'board'));
    function render() {
      var p = data.problems[index], plus = data.op === '+';
      var answer = plus ? p[0] + p[1] : p[0] - p[1], counted = 0, i, n;
      clear(board);
      add(board, el('p', 'question', p[0] + ' ' + data.op + ' ' + p[1] + ' = ?'));
      add(board, el('p', 'hint', plus ? '点一点苹果，数一数一共有几个。Tap the apples to count.'
        : '灰色的苹果被吃掉了，数一数还剩几个。Grey apples are eaten; count the rest.'));
      var tray = add(board, el('div', 'tray'));
      function makeApple(gone, gap) {
        var node = add(tray, el('span', 'apple' + (gone ? ' gone' : '') + (gap ? ' gap' : '')));
        if (gone) { return; }
        node.onclick = function () {
          if (node.className.indexOf('counted') >= 0) { return; }
          counted += 1;
          node.className += ' counted';
          setText(node, String(counted));
        };
      }
      for (i = 0; i < p[0] + (plus ? p[1] : 0); i++) {
        makeApple(!plus && i >= p[0] - p[1], plus && i === p[0]);
      }
      var choices = add(board, el('div', 'choices'));
      var feedback = add(board, el('p', 'feedback'));
      function makeChoice(value) {
        add(choices, button(String(value), 'btn', function () {
          say(feedback, value === answer, value === answer ? '= ' + answer : '');
        }));
      }
      for (n = 0; n <= 5; n++) { makeChoice(n); }
      add(board, button('下一题 Next', 'btn next', function () {
        index = (index + 1) % data.problems.length;
        render();
      }));
    }
    render();
  }

  function classify() {
    var picks = [], rows = [], i;
    var list = add(app, el('div', 'rows'));
    function makeRow(item, idx) {
      var row = add(list, el('div', 'row'));
      var buttons = [], c;
      add(row, el('span', 'item', item[0] + ' ' + item[1]));
      function makePick(cat) {
        buttons.push(add(row, button(data.categories[cat][0] + ' ' + data.categories[cat][1],
          'btn', function () {
            var k;
            picks[idx] = cat;
            for (k = 0; k < buttons.length; k++) {
              buttons[k].className = k === cat ? 'btn pick' : 'btn';
            }
          })));
      }
      for (c = 0; c < data.categories.length; c++) { makePick(c); }
      rows.push(row);
    }
    for (i = 0; i < data.items.length; i++) { makeRow(data.items[i], i); }
    var feedback = add(app, el('p', 'feedback'));
    add(app, button('检查 Check', 'btn next', function () {
      var right = 0, k;
      for (k = 0; k < data.items.length; k++) {
        var ok = picks[k] === data.items[k][2];
        rows[k].className = 'row ' + (ok ? 'right' : 'wrong');
        if (ok) { right += 1; }
      }
      say(feedback, right === data.items.length, right + ' / ' + data.items.length);
    }));
  }

  function poem() {
    var tabs = add(app, el('div', 'tabs'));
    var page = add(app, el('div', 'detail'));
    function open(p) {
      var shown = 0, lines = [], i;
      clear(page);
      add(page, el('div', 'big', p.title));
      add(page, el('p', 'author', p.author));
      for (i = 0; i < p.lines.length; i++) {
        lines.push(add(page, el('p', 'line hidden', p.lines[i])));
      }
      add(page, button('下一句 Next line', 'btn next', function () {
        if (shown < lines.length) { lines[shown].className = 'line'; shown += 1; }
      }));
      add(page, button('重来 Restart', 'btn', function () { open(p); }));
    }
    function makeTab(p) { add(tabs, button(p.title, 'btn', function () { open(p); })); }
    for (var i = 0; i < data.poems.length; i++) { makeTab(data.poems[i]); }
    open(data.poems[0]);
  }

  function fraction() {
    var index = 0;
    var board = add(app, el('div', 'board'));
    function render() {
      var t = data.tasks[index], cells = [], i;
      clear(board);
      add(board, el('p', 'question', t.zh));
      add(board, el('p', 'hint', t.en + ' (tap the parts)'));
      var bar = add(board, el('div', 'bar'));
      var status = add(board, el('p', 'hint'));
      var feedback = add(board, el('p', 'feedback'));
      function shaded() {
        var n = 0, k;
        for (k = 0; k < cells.length; k++) {
          if (cells[k].className.indexOf('shaded') >= 0) { n += 1; }
        }
        setText(status, '已涂 ' + n + ' 份，共 ' + t.parts + ' 份：' + n + '/' + t.parts);
        return n;
      }
      function makeCell() {
        var cell = add(bar, el('span', 'cell'));
        cell.style.width = (Math.floor(288 / t.parts) - 4) + 'px';
        cell.onclick = function () {
          cell.className = cell.className === 'cell' ? 'cell shaded' : 'cell';
          shaded();
        };
        cells.push(cell);
      }
      for (i = 0; i < t.parts; i++) { makeCell(); }
      shaded();
      add(board, button('检查 Check', 'btn', function () {
        say(feedback, shaded() === t.target);
      }));
      add(board, button('下一题 Next', 'btn next', function () {
        index = (index + 1) % data.tasks.length;
        render();
      }));
    }
    render();
  }

  var kinds = { cards: cards, count: counting, classify: classify, poem: poem,
    fraction: fraction };
  kinds[data.kind]();
}());
