// The topology page's three static files, kept as strings so the daemon
// serves them without a build step or a file lookup. The script draws the
// model from /topology.json as inline SVG and polls it every two seconds;
// it builds every element with createElementNS/textContent (no innerHTML),
// so peer nicknames can never inject markup.

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>meshnet topology</title>
<link rel="stylesheet" href="page.css">
<script src="page.js" defer></script>
</head>
<body>
<header><h1>meshnet</h1><span id="who"></span><span id="state">loading</span></header>
<main>
<svg id="graph" viewBox="0 0 640 480" role="img" aria-label="mesh topology"></svg>
<section>
<table id="peers"><thead><tr><th>peer</th><th>route</th><th>IPAM share</th><th>in use</th></tr></thead><tbody></tbody></table>
<ul id="legend"></ul>
<ul id="unknown"></ul>
<p class="note">Link colours are this router's view of its own connections; links between two other peers show only whether they are up. "In use" counts addresses allocated on that peer (pods, and the host's own address after <code>meshnet expose</code>).</p>
</section>
</main>
</body>
</html>
`;

export const PAGE_CSS = `body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{display:flex;gap:1em;align-items:baseline;padding:.5em 1em;background:#fff;border-bottom:1px solid #ddd}
h1{font-size:1.2em;margin:0}
#state{margin-left:auto;color:#666}
#state.error{color:#d62728;font-weight:bold}
main{display:flex;flex-wrap:wrap;gap:1em;padding:1em}
svg{background:#fff;border:1px solid #ddd;width:640px;max-width:100%;height:auto}
section{flex:1;min-width:280px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border:1px solid #ddd;padding:.2em .5em;text-align:left}
td.num{text-align:right}
tr.unreachable td{color:#d62728}
ul{list-style:none;padding:0}
.swatch{display:inline-block;width:2.2em;height:0;border-top:4px solid;margin-right:.5em;vertical-align:middle}
.swatch.dashed{border-top-style:dashed}
.note{color:#666;font-size:.9em}
.peer circle{fill:#fff;stroke:#333;stroke-width:2}
.peer.self circle{stroke-width:4}
.peer.unreachable circle{stroke:#d62728}
.peer text{text-anchor:middle;font-size:12px}
.peer text.sub{fill:#555;font-size:11px}
`;

export const PAGE_JS = `'use strict';
(function () {
  var NS = 'http://www.w3.org/2000/svg';
  var POLL_MS = 2000;
  var generation = 0;
  function svgEl(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function htmlEl(name, text, cls) {
    var e = document.createElement(name);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
  function label(n) { return n.nickname || n.name; }
  function pct(x) { return (100 * x).toFixed(1) + '%'; }
  function render(m) {
    var svg = document.getElementById('graph');
    clear(svg);
    var at = {};
    m.nodes.forEach(function (n) { at[n.name] = n; });
    m.links.forEach(function (l) {
      var a = at[l.a], b = at[l.b];
      if (!a || !b) return;
      var line = svgEl('line', { x1: a.x, y1: a.y, x2: b.x, y2: b.y, stroke: l.colour, 'stroke-width': l.kind === 'remote' ? 2 : 4,
        'class': 'link', 'data-a': l.a, 'data-b': l.b, 'data-kind': l.kind });
      if (l.dashed) line.setAttribute('stroke-dasharray', '8 6');
      line.appendChild(svgEl('title', {}, label(a) + ' - ' + label(b) + ': ' + l.detail));
      svg.appendChild(line);
    });
    m.nodes.forEach(function (n) {
      var g = svgEl('g', { 'class': 'peer' + (n.self ? ' self' : '') + (n.reachable ? '' : ' unreachable'), 'data-peer': n.name, 'data-nickname': n.nickname });
      g.appendChild(svgEl('circle', { cx: n.x, cy: n.y, r: 30 }));
      g.appendChild(svgEl('text', { x: n.x, y: n.y + 4 }, label(n)));
      // The share label goes under the circle, or above it for peers in the upper half, where links leave downwards.
      var ly = n.y < 200 ? n.y - 40 : n.y + 48;
      g.appendChild(svgEl('text', { x: n.x, y: ly, 'class': 'sub' }, pct(n.share) + (n.inUse === null ? '' : ', ' + n.inUse + ' in use')));
      g.appendChild(svgEl('title', {}, n.name + ' (' + n.route + ')'));
      svg.appendChild(g);
    });
    var tbody = document.querySelector('#peers tbody');
    clear(tbody);
    m.nodes.forEach(function (n) {
      var tr = htmlEl('tr', undefined, n.reachable ? '' : 'unreachable');
      tr.setAttribute('data-peer', n.name);
      tr.appendChild(htmlEl('td', n.nickname ? n.name + ' (' + n.nickname + ')' : n.name));
      tr.appendChild(htmlEl('td', n.route));
      tr.appendChild(htmlEl('td', n.owned + ' (' + pct(n.share) + ')', 'num'));
      tr.appendChild(htmlEl('td', n.inUse === null ? '?' : String(n.inUse), 'num'));
      tbody.appendChild(tr);
    });
    var legend = document.getElementById('legend');
    clear(legend);
    m.legend.forEach(function (k) {
      var li = htmlEl('li');
      var sw = htmlEl('span', undefined, 'swatch' + (k.dashed ? ' dashed' : ''));
      sw.style.borderTopColor = k.colour;
      li.appendChild(sw);
      li.appendChild(document.createTextNode(k.label));
      legend.appendChild(li);
    });
    var unknown = document.getElementById('unknown');
    clear(unknown);
    m.unknownTargets.forEach(function (t) { unknown.appendChild(htmlEl('li', t.address + ': ' + t.state + (t.info ? ' (' + t.info + ')' : ''))); });
    var self = at[m.self];
    document.getElementById('who').textContent = (self ? label(self) + ' ' : '') + m.self + ', range ' + m.range + ', IPAM ' + m.ipamStatus + (m.encryption ? ', encrypted' : ', unencrypted');
    generation++;
    document.body.setAttribute('data-generation', String(generation));
  }
  function setState(text, error) {
    var s = document.getElementById('state');
    s.textContent = text;
    s.className = error ? 'error' : '';
  }
  function refresh() {
    fetch('topology.json', { cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })
      .then(function (m) { render(m); setState('updated ' + new Date().toLocaleTimeString()); })
      .catch(function (e) { setState('cannot reach the router: ' + e.message, true); })
      .then(function () { setTimeout(refresh, POLL_MS); });
  }
  refresh();
})();
`;
