// The Atlas dashboard page: fetches every panel from /api/<panel> on a timer
// and draws it with Chart.js. No build step; served embedded by package
// dashboard. Data never reaches innerHTML: text goes through textContent.
//
// window.atlasDashboard exposes the charts and each panel's state for the
// browser test (e2e/dashboard_browser_test.go) and for people poking at
// the page from the console.
(function () {
  'use strict';

  const body = document.body;
  const refreshMs = Math.max(1000, Number(body.dataset.refreshMs) || 10000);
  const PANELS = ['trending', 'completion', 'genre-gap', 'funnel', 'quality', 'alerts'];
  const PALETTE = ['#3563e9', '#e8590c', '#0ca678', '#ae3ec9', '#f59f00', '#1098ad', '#d6336c', '#5c940d',
    '#7048e8', '#495057', '#c2255c', '#2b8a3e'];
  const DECILES = ['0–10%', '10–20%', '20–30%', '30–40%', '40–50%', '50–60%', '60–70%', '70–80%', '80–90%', '90–100%'];

  const dash = {
    charts: {}, // by canvas name: trending, completion, dropoff, genreGap, funnel, quality
    panels: {}, // by panel: loading, ready, empty, stale, unavailable, error
    refreshes: 0, // completed refresh rounds
    health: null,
    lastOk: null,
  };
  window.atlasDashboard = dash;

  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const state = {
    period: params.get('period') || body.dataset.period || '1h',
    country: (params.get('country') || '').toUpperCase(),
    metric: params.get('metric') || 'rebuffers_per_session',
    genreCountry: '',
    dropoffTitle: '',
  };
  const data = {}; // last good answer per panel
  let countries = []; // seen in genre-gap, by watch time
  let inFlight = false;
  let timer = null;

  const nf = new Intl.NumberFormat('en-US');
  const pf = new Intl.NumberFormat('en-US', { style: 'percent', maximumFractionDigits: 1 });
  const df = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

  if (window.Chart) {
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.font.family = getComputedStyle(document.documentElement).fontFamily;
    Chart.defaults.plugins.legend.labels.boxWidth = 12;
  }

  // ---------------------------------------------------------------- helpers

  function periodText() {
    const opt = $('period').selectedOptions[0];
    return opt ? opt.textContent : state.period;
  }

  function utc(iso, withDate) {
    const d = new Date(iso);
    const hm = d.toISOString().slice(11, 16);
    return withDate ? d.toISOString().slice(5, 10) + ' ' + hm : hm;
  }

  function longPeriod() {
    return /d$/.test(state.period) || parseInt(state.period, 10) > 24;
  }

  function titleName(payload, id) {
    return (payload.names && payload.names[id]) || id;
  }

  function shorten(s, n) {
    return s.length > n ? s.slice(0, n - 1) + '…' : s;
  }

  // setPanel shows what a panel holds: loading, ready, empty, unavailable
  // (no data yet, ClickHouse away) or error.
  function setPanel(name, st, message) {
    const el = $('panel-' + name);
    dash.panels[name] = st;
    el.dataset.state = st;
    el.dataset.stale = '';
    el.querySelector('.message').textContent = message || '';
  }

  // markStale dims a panel that keeps its last data while ClickHouse is
  // away; atlasDashboard.panels says "stale".
  function markStale(name) {
    $('panel-' + name).dataset.stale = '1';
    dash.panels[name] = 'stale';
  }

  function draw(name, canvasId, config) {
    if (!window.Chart) {
      throw new Error('Chart.js did not load');
    }
    const existing = dash.charts[name];
    if (existing) {
      existing.data = config.data;
      existing.options = config.options || {};
      existing.update('none');
      return existing;
    }
    const chart = new Chart($(canvasId), config);
    dash.charts[name] = chart;
    return chart;
  }

  function cell(tr, text, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function fillSelect(select, options, value) {
    const keep = Array.from(select.options).filter((o) => o.dataset.fixed === '1');
    select.replaceChildren(...keep);
    for (const [v, label] of options) {
      const o = document.createElement('option');
      o.value = v;
      o.textContent = label;
      select.appendChild(o);
    }
    select.value = value;
    if (select.value !== value && select.options.length) {
      select.selectedIndex = 0;
    }
  }

  // ---------------------------------------------------------------- panels

  const renderers = {
    trending(p) {
      if (!p.rows.length) {
        return 'No title reached 5 starts in the ' + periodText() + (state.country ? ' in ' + state.country : '') + '. ' +
          'Playback rows come from the aggregates role (atlas run aggregates).';
      }
      const rows = p.rows;
      draw('trending', 'chart-trending', {
        type: 'bar',
        data: {
          labels: rows.map((r) => shorten(titleName(p, r.title_id), 28)),
          datasets: [
            { label: 'starts', data: rows.map((r) => r.starts), backgroundColor: PALETTE[0] },
            { label: 'previous period', data: rows.map((r) => r.prev_starts), backgroundColor: '#b8c6f2' },
          ],
        },
        options: {
          indexAxis: 'y',
          scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
          plugins: {
            tooltip: {
              callbacks: {
                afterBody: (items) => {
                  const r = rows[items[0].dataIndex];
                  return ['viewers: ' + nf.format(r.viewers),
                    'growth: ' + (r.growth == null ? 'new' : df.format(r.growth) + '×')];
                },
              },
            },
          },
        },
      });
      return null;
    },

    completion(p) {
      $('dropoff-title').parentElement.hidden = !p.rows.length;
      if (!p.rows.length) {
        return 'No playback starts in the ' + periodText() + (state.country ? ' in ' + state.country : '') + '.';
      }
      const rows = p.rows;
      fillSelect($('dropoff-title'), rows.map((r) => [r.title_id, shorten(titleName(p, r.title_id), 40)]), state.dropoffTitle);
      state.dropoffTitle = $('dropoff-title').value;
      draw('completion', 'chart-completion', {
        type: 'bar',
        data: {
          labels: rows.map((r) => shorten(titleName(p, r.title_id), 24)),
          datasets: [
            { label: 'completed', data: rows.map((r) => r.completion_rate), backgroundColor: PALETTE[2] },
            { label: 'abandoned', data: rows.map((r) => r.abandon_rate), backgroundColor: '#f3a683' },
          ],
        },
        options: {
          indexAxis: 'y',
          scales: { x: { beginAtZero: true, ticks: { callback: (v) => pf.format(v) } } },
          plugins: {
            tooltip: {
              callbacks: {
                label: (item) => item.dataset.label + ': ' + pf.format(item.raw),
                afterBody: (items) => {
                  const r = rows[items[0].dataIndex];
                  return ['starts: ' + nf.format(r.starts), 'most stops at ' + (r.peak_dropoff || '-')];
                },
              },
            },
          },
        },
      });
      drawDropoff();
      return null;
    },

    'genre-gap'(p) {
      const rows = p.rows;
      if (!rows.length) {
        return 'No watch time on catalog titles in the ' + periodText() + '. ' +
          'Demand needs playback rows and the catalog (titles table).';
      }
      const hours = {};
      for (const r of rows) hours[r.country] = (hours[r.country] || 0) + r.watch_hours;
      // The rows of a genre count a title once per genre: the sum overstates
      // hours, but ranks countries the same way.
      countries = Object.keys(hours).sort((a, b) => hours[b] - hours[a] || a.localeCompare(b));
      const choices = !state.country || countries.includes(state.country) ? countries : [state.country].concat(countries);
      fillSelect($('country'), choices.map((c) => [c, c]), state.country);
      if (state.country && countries.includes(state.country)) state.genreCountry = state.country;
      if (!countries.includes(state.genreCountry)) state.genreCountry = countries[0];
      fillSelect($('genre-country'), countries.map((c) => [c, c]), state.genreCountry);
      $('genre-country').parentElement.hidden = false;
      drawGenreGap();
      return null;
    },

    funnel(p) {
      const rows = p.by_row || [];
      if (!rows.length) {
        return 'No browse impressions in the ' + periodText() + '. The funnel comes from browse events.';
      }
      draw('funnel', 'chart-funnel', {
        type: 'bar',
        data: {
          labels: rows.map((r) => r.row),
          datasets: [
            { label: 'impressions', data: rows.map((r) => r.impressions), backgroundColor: '#9bb1f0' },
            { label: 'selects', data: rows.map((r) => r.selects), backgroundColor: PALETTE[0] },
            { label: 'plays', data: rows.map((r) => r.plays), backgroundColor: PALETTE[1] },
          ],
        },
        options: {
          scales: { y: { type: 'logarithmic', min: 1, ticks: { callback: (v) => (/^1|^5/.test(String(v)) ? nf.format(v) : '') } } },
          plugins: {
            tooltip: {
              callbacks: {
                afterBody: (items) => {
                  const r = rows[items[0].dataIndex];
                  return ['select rate: ' + pf.format(r.select_rate), 'play rate: ' + pf.format(r.play_rate),
                    'conversion: ' + pf.format(r.conversion)];
                },
              },
            },
          },
        },
      });
      const tbody = $('funnel-artwork').tBodies[0];
      tbody.replaceChildren();
      for (const r of p.rows.slice(0, 5)) {
        const tr = document.createElement('tr');
        cell(tr, r.row || '-');
        cell(tr, r.artwork_id || '-');
        cell(tr, nf.format(r.impressions), 'num');
        cell(tr, pf.format(r.select_rate || 0), 'num');
        cell(tr, pf.format(r.conversion || 0), 'num');
        tbody.appendChild(tr);
      }
      return null;
    },

    quality(p) {
      const s = p.series;
      if (!s || !s.lines.length || !s.lines[0].sessions) {
        return 'No playback sessions in the ' + periodText() + (state.country ? ' in ' + state.country : '') + '.';
      }
      const withDate = longPeriod();
      const bitrate = s.metric === 'mean_bitrate_kbps';
      const fmt = (v) => (v == null ? '-' : bitrate ? nf.format(Math.round(v)) : /rate$/.test(s.metric) ? pf.format(v) : df.format(v));
      draw('quality', 'chart-quality', {
        type: 'line',
        data: {
          labels: s.buckets.map((b) => utc(b, withDate)),
          datasets: s.lines.map((l, i) => ({
            label: l.why === 'overall' ? 'all CDNs and ISPs' : l.label + (l.why === 'worst' ? ' (worst)' : ''),
            data: l.points,
            borderColor: l.why === 'overall' ? '#1d2330' : PALETTE[(i - 1) % PALETTE.length],
            backgroundColor: l.why === 'overall' ? '#1d2330' : PALETTE[(i - 1) % PALETTE.length],
            borderWidth: l.why === 'overall' ? 3 : 1.5,
            borderDash: l.why === 'worst' ? [5, 3] : [],
            // Many buckets: points only where a bucket has no neighbour to
            // draw a line to, or it would not show at all.
            pointRadius: s.buckets.length <= 40 ? 2 : (ctx) => (isolated(l.points, ctx.dataIndex) ? 2.5 : 0),
            spanGaps: false,
            cubicInterpolationMode: 'monotone',
          })),
        },
        options: {
          interaction: { mode: 'index', intersect: false },
          scales: {
            y: { beginAtZero: true, ticks: { callback: fmt } },
            x: { ticks: { maxTicksLimit: 12, autoSkip: true } },
          },
          plugins: {
            legend: { position: 'bottom' },
            tooltip: { callbacks: { label: (item) => item.dataset.label + ': ' + fmt(item.raw) } },
          },
        },
      });
      const worst = s.lines.filter((l) => l.why === 'worst')[0];
      $('quality-caption').textContent =
        s.cells + ' CDN × ISP cells; ' + nf.format(s.lines[0].sessions) + ' sessions, overall ' + fmt(s.lines[0].value) +
        (worst ? '; worst: ' + worst.label + ' at ' + fmt(worst.value) + ' over ' + nf.format(worst.sessions) + ' sessions' : '') +
        '. Buckets of ' + Math.round(p.bucket_seconds / 60) + ' min; solid: busiest cells, dashed: worst.';
      return null;
    },

    alerts(p) {
      const rows = p.rows;
      const chips = $('alert-kinds');
      chips.replaceChildren();
      if (!rows.length) {
        return 'No alerts detected in the ' + periodText() + '. Alerts come from the anomaly role (table alerts).';
      }
      const kinds = {};
      for (const a of rows) kinds[a.kind] = (kinds[a.kind] || 0) + 1;
      for (const k of Object.keys(kinds).sort()) {
        const c = document.createElement('span');
        c.className = 'chip';
        c.textContent = k.replace(/_/g, ' ') + ' ' + kinds[k];
        chips.appendChild(c);
      }
      const tbody = $('alerts').tBodies[0];
      tbody.replaceChildren();
      const sev = { 1: 'info', 2: 'warning', 3: 'high', 4: 'critical' };
      for (const a of rows) {
        const tr = document.createElement('tr');
        cell(tr, utc(a.detected_at, true));
        cell(tr, a.kind.replace(/_/g, ' '));
        const s = cell(tr, '');
        const badge = document.createElement('span');
        badge.className = 'sev sev-' + Math.min(4, Math.max(1, a.severity));
        badge.textContent = sev[a.severity] || String(a.severity);
        s.appendChild(badge);
        cell(tr, a.status, 'st-' + a.status);
        cell(tr, a.subject, 'subject').title = a.evidence || '';
        cell(tr, df.format(a.score), 'num');
        cell(tr, utc(a.window_start, true) + '–' + utc(a.window_end));
        tbody.appendChild(tr);
      }
      return null;
    },
  };

  function isolated(points, i) {
    return points[i] != null && points[i - 1] == null && points[i + 1] == null;
  }

  function drawDropoff() {
    const p = data.completion;
    if (!p || !p.rows.length) return;
    const chosen = p.rows.filter((r) => !state.dropoffTitle || r.title_id === state.dropoffTitle);
    const sums = new Array(10).fill(0);
    for (const r of chosen) (r.dropoff || []).forEach((v, i) => { sums[i] += v; });
    const total = sums.reduce((a, b) => a + b, 0);
    draw('dropoff', 'chart-dropoff', {
      type: 'bar',
      data: {
        labels: DECILES,
        datasets: [{ label: 'stops before the end', data: sums, backgroundColor: '#f08c4a' }],
      },
      options: {
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { title: { display: true, text: 'position in the title' } } },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (item) => nf.format(item.raw) + ' stops' + (total ? ' (' + pf.format(item.raw / total) + ')' : '') } },
        },
      },
    });
  }

  function drawGenreGap() {
    const p = data['genre-gap'];
    if (!p) return;
    const rows = p.rows.filter((r) => r.country === state.genreCountry);
    draw('genreGap', 'chart-genre-gap', {
      type: 'bar',
      data: {
        labels: rows.map((r) => r.genre),
        datasets: [
          { label: 'demand: share of watch time', data: rows.map((r) => r.demand_share), backgroundColor: PALETTE[3] },
          { label: 'supply: share of catalog titles', data: rows.map((r) => r.supply_share), backgroundColor: '#cfd4dc' },
        ],
      },
      options: {
        scales: { y: { beginAtZero: true, ticks: { callback: (v) => pf.format(v) } } },
        plugins: {
          tooltip: {
            callbacks: {
              label: (item) => item.dataset.label + ': ' + pf.format(item.raw),
              afterBody: (items) => {
                const r = rows[items[0].dataIndex];
                return ['underserved: ' + df.format(r.underserved) + '×', nf.format(Math.round(r.watch_hours)) + ' hours, ' + nf.format(r.titles) + ' titles'];
              },
            },
          },
        },
      },
    });
    const top = rows.filter((r) => r.underserved > 1).slice(0, 3);
    $('genre-caption').textContent = top.length
      ? 'Most underserved in ' + state.genreCountry + ': ' + top.map((r) => r.genre + ' ' + df.format(r.underserved) + '×').join(', ') + ' (demand share ÷ supply share).'
      : 'No genre in ' + state.genreCountry + ' is watched more than the catalog offers it.';
  }

  // ---------------------------------------------------------------- fetching

  function apiURL(panel) {
    const q = new URLSearchParams({ period: state.period });
    if (state.country && panel !== 'funnel' && panel !== 'alerts' && panel !== 'genre-gap') q.set('country', state.country);
    if (panel === 'quality') q.set('metric', state.metric);
    return '/api/' + panel + '?' + q.toString();
  }

  // get fetches a URL and says what happened: {ok, body} or {unavailable,
  // error} (503: ClickHouse) or {error} (anything else).
  async function get(url) {
    const ctl = new AbortController();
    const t = setTimeout(() => ctl.abort(), Math.max(15000, refreshMs * 2));
    try {
      const res = await fetch(url, { signal: ctl.signal, headers: { Accept: 'application/json' } });
      let payload = null;
      try {
        payload = await res.json();
      } catch (e) {
        payload = null;
      }
      if (res.ok) return { ok: true, body: payload };
      const error = (payload && payload.error) || res.status + ' ' + res.statusText;
      return { unavailable: res.status === 503, error: error, body: payload };
    } catch (e) {
      return { unreachable: true, error: e.name === 'AbortError' ? 'no answer in time' : 'the dashboard server is not answering' };
    } finally {
      clearTimeout(t);
    }
  }

  async function loadPanel(name) {
    const r = await get(apiURL(name));
    if (r.ok) {
      data[name] = r.body;
      let empty;
      try {
        empty = renderers[name](r.body);
      } catch (e) {
        console.error('cannot draw panel ' + name, e);
        setPanel(name, 'error', 'Cannot draw this panel: ' + e.message);
        return { error: e.message };
      }
      setPanel(name, empty ? 'empty' : 'ready', empty || '');
      return r;
    }
    if (r.unavailable || r.unreachable) {
      if (data[name]) {
        markStale(name);
      } else {
        setPanel(name, 'unavailable', 'No data: ' + (r.unreachable ? r.error : 'ClickHouse is unavailable') + '.');
      }
    } else {
      setPanel(name, 'error', 'This panel failed: ' + r.error);
    }
    return r;
  }

  function showStatus(health, down) {
    const el = $('status');
    el.replaceChildren();
    const dot = document.createElement('span');
    dot.className = down ? 'down' : 'ok';
    dot.textContent = down ? '● ClickHouse unavailable' : '● ClickHouse ' + ((health && health.clickhouse.version) || '');
    el.appendChild(dot);
    const parts = [];
    if (health && health.clickhouse) {
      const ro = health.clickhouse.readonly;
      parts.push(health.clickhouse.user + (ro && ro !== '0' ? ' (read-only)' : ''));
    }
    if (health && health.latest_window) parts.push('data to ' + utc(health.latest_window, longPeriod()) + ' UTC');
    if (dash.lastOk) parts.push('updated ' + dash.lastOk.toISOString().slice(11, 19) + ' UTC');
    el.appendChild(document.createTextNode(' · ' + parts.join(' · ')));
  }

  async function refresh() {
    if (inFlight) return;
    inFlight = true;
    try {
      const [health, ...results] = await Promise.all([get('/api/health'), ...PANELS.map(loadPanel)]);
      dash.health = health.body;
      const down = [health, ...results].find((r) => r.unavailable || r.unreachable);
      const banner = $('banner');
      if (down) {
        $('banner-title').textContent = down.unreachable ? 'The dashboard server is not answering.' : 'ClickHouse is unavailable.';
        $('banner-text').textContent = ' ' + down.error + '. Retrying every ' + Math.round(refreshMs / 1000) + ' s' +
          (dash.lastOk ? '; panels show the data of ' + dash.lastOk.toISOString().slice(11, 19) + ' UTC.' : '.');
        banner.hidden = false;
      } else {
        banner.hidden = true;
        dash.lastOk = new Date();
      }
      const warning = $('warning');
      const ro = health.ok && health.body.clickhouse.readonly;
      warning.hidden = ro !== '0';
      if (ro === '0') {
        warning.textContent = 'The dashboard reads ClickHouse as ' + health.body.clickhouse.user +
          ', a user that can write. Give it a readonly profile (the atlas_reader user of scripts/clickhouse.sh is one).';
      }
      showStatus(health.body, !!down);
    } finally {
      inFlight = false;
      dash.refreshes++;
    }
  }

  function restart() {
    const q = new URLSearchParams();
    if (state.period !== body.dataset.period) q.set('period', state.period);
    if (state.country) q.set('country', state.country);
    if (state.metric !== 'rebuffers_per_session') q.set('metric', state.metric);
    const qs = q.toString();
    history.replaceState(null, '', qs ? '?' + qs : location.pathname);
    clearInterval(timer);
    refresh();
    timer = setInterval(refresh, refreshMs);
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    for (const p of PANELS) setPanel(p, 'loading', 'Loading…');
    // Until there are countries and titles to pick from.
    $('genre-country').parentElement.hidden = true;
    $('dropoff-title').parentElement.hidden = true;
    for (const el of [$('country'), $('dropoff-title')]) el.options[0].dataset.fixed = '1';
    const period = $('period');
    if (!Array.from(period.options).some((o) => o.value === state.period)) {
      const o = document.createElement('option');
      o.value = state.period;
      o.textContent = 'last ' + state.period;
      period.appendChild(o);
    }
    period.value = state.period;
    if (state.country) fillSelect($('country'), [[state.country, state.country]], state.country);
    $('quality-metric').value = state.metric;

    period.addEventListener('change', () => { state.period = period.value; restart(); });
    $('country').addEventListener('change', (e) => { state.country = e.target.value; restart(); });
    $('quality-metric').addEventListener('change', (e) => { state.metric = e.target.value; restart(); });
    $('genre-country').addEventListener('change', (e) => { state.genreCountry = e.target.value; drawGenreGap(); });
    $('dropoff-title').addEventListener('change', (e) => { state.dropoffTitle = e.target.value; drawDropoff(); });
    $('controls').addEventListener('submit', (e) => e.preventDefault());
    if (!window.Chart) {
      const banner = $('banner');
      $('banner-title').textContent = 'The chart library did not load.';
      $('banner-text').textContent = ' Reload the page; if this stays, the binary was built without dashboard/assets/vendor.';
      banner.hidden = false;
    }
    restart();
  }

  init();
})();
