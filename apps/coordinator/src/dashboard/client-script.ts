// The dashboard's client script, served as /static/dashboard.js: it polls the JSON endpoints and
// keeps the page live (the overview's tables; a job's charts drawn with uPlot, its per-stage table,
// its plan picture once the plan is known, and its logs with follow). Rows arrive as HTML the
// server escaped; logs are added as text.
export const CLIENT_SCRIPT = String.raw`(function () {
  'use strict';
  var main = document.querySelector('main');
  var page = main && main.getAttribute('data-page');
  function getJson(url) {
    return fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } }).then(function (r) {
      if (r.status === 401) { location.href = '/login'; throw new Error('logged out'); }
      if (!r.ok) throw new Error(url + ': HTTP ' + r.status);
      return r.json();
    });
  }
  if (page === 'overview') {
    var refresh = function () {
      getJson('/api/overview').then(function (d) {
        document.querySelector('#jobs tbody').innerHTML = d.html.jobs;
        document.querySelector('#agents tbody').innerHTML = d.html.agents;
      }).catch(function () {}).then(function () { setTimeout(refresh, 2000); });
    };
    refresh();
  }
  if (page !== 'job') return;
  var id = main.getAttribute('data-job');
  var since = 0, logSince = 0, planShown = false;
  var steps = [], loss = [], tokens = [], stepTime = [];
  function chart(elId, label, color, values) {
    var el = document.getElementById(elId);
    var opts = { width: 430, height: 220, title: label, scales: { x: { time: false } }, axes: [{}, { size: 70 }],
      series: [{ label: 'step' }, { label: label, stroke: color, width: 1.5 }] };
    return { el: el, plot: new uPlot(opts, [steps, values], el), values: values };
  }
  var charts = [chart('chart-loss', 'loss (nats)', '#e15759', loss), chart('chart-tokens', 'tokens/s', '#4e79a7', tokens),
    chart('chart-step', 'step time (s)', '#59a14f', stepTime)];
  var logs = document.getElementById('logs');
  function text(elId, value) { var e = document.getElementById(elId); if (e) e.textContent = value; }
  function tick() {
    getJson('/api/jobs/' + encodeURIComponent(id) + '?since=' + since + '&log=' + logSince).then(function (d) {
      d.points.forEach(function (p) { steps.push(p.step); loss.push(p.loss); tokens.push(p.tokensPerS); stepTime.push(p.stepTimeS); since = p.step; });
      if (d.points.length > 0) charts.forEach(function (c) { c.plot.setData([steps, c.values]); c.el.setAttribute('data-points', String(steps.length)); });
      var j = d.job;
      text('job-state', j.state); document.getElementById('job-state').className = 'state-' + j.state;
      text('job-step', j.step); text('job-loss', j.loss === null ? '-' : j.loss.toFixed(4)); text('job-message', j.message);
      if (d.stagesHtml !== null) document.querySelector('#stages tbody').innerHTML = d.stagesHtml;
      if (d.planError) text('stages-note', 'No prediction: ' + d.planError);
      if (d.planAvailable && !planShown) {
        planShown = true;
        var img = document.createElement('img');
        img.id = 'plan-img'; img.alt = 'plan timeline'; img.style.maxWidth = '100%';
        img.src = '/jobs/' + encodeURIComponent(id) + '/plan.svg';
        document.getElementById('plan').appendChild(img);
      }
      if (d.logs.length > 0) {
        logs.appendChild(document.createTextNode(d.logs.map(function (l) { return '[rank ' + l.rank + ' ' + l.stream + '] ' + l.text; }).join('\n') + '\n'));
        if (document.getElementById('follow').checked) logs.scrollTop = logs.scrollHeight;
      }
      logSince = d.nextLog;
      setTimeout(tick, d.terminal && d.points.length === 0 && d.logs.length === 0 ? 10000 : 1000);
    }).catch(function () { setTimeout(tick, 3000); });
  }
  tick();
})();
`;
