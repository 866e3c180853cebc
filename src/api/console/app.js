// trailwarden console: a single-page app over /api/v1, vanilla JavaScript.
//
// Routes (hash): #/alarms?filters, #/alarms/ID?filters (the list with the detail
// drawer open), #/rules, #/activity, #/events?filters, #/allowlist, #/directory. The bearer token lives in sessionStorage and
// goes out as `Authorization: Bearer`; any 401 drops it and returns to sign-in.
// Every element is built with DOM calls (never innerHTML with data), which keeps
// the page safe from whatever the audit logs contain and satisfies the CSP.
'use strict';

(() => {
  const TOKEN_KEY = 'trailwarden.token';
  const LEVELS = ['high', 'medium', 'low', 'info'];
  const LEVEL_RANK = { high: 4, medium: 3, low: 2, info: 1 };
  const STATUSES = ['unprocessed', 'processed', 'ignored'];
  const PAGE_SIZES = [25, 50, 100];
  const DEFAULT_LIMIT = 50;
  const MAX_LIMIT = 100;
  const LIST_KEYS = ['status', 'level', 'rule', 'account', 'key', 'q', 'since', 'until', 'sort', 'order', 'limit', 'offset'];

  // Anything the Content-Security-Policy blocks is a bug in this file: say so in
  // the browser console and keep a list the end-to-end test checks is empty.
  const cspViolations = [];
  window.trailwardenCspViolations = cspViolations;
  document.addEventListener('securitypolicyviolation', (event) => {
    const text = `${event.violatedDirective} blocked ${event.blockedURI || 'inline code'}`;
    cspViolations.push(text);
    console.error(`Content-Security-Policy: ${text}`);
  });

  const app = document.getElementById('app');
  const toasts = document.getElementById('toasts');

  /** What the app knows between renders. */
  const state = {
    me: null, // {name, role} once signed in
    rules: null, // rules list for the rule filter and the allowlist drawer (loaded lazily)
    listKey: null, // the query string the alarm list on screen was fetched with
    listSeq: 0, // guards against out-of-order list responses
    detailSeq: 0,
    list: null, // the last list response
    page: null, // which page is mounted ('alarms', 'rules', 'activity')
    signinMessage: '',
  };

  // ---------- DOM helpers ----------

  function h(tag, attrs, ...children) {
    const element = document.createElement(tag);
    applyAttrs(element, attrs);
    append(element, children);
    return element;
  }

  function svg(tag, attrs, ...children) {
    const element = document.createElementNS('http://www.w3.org/2000/svg', tag);
    applyAttrs(element, attrs);
    append(element, children);
    return element;
  }

  function applyAttrs(element, attrs) {
    if (!attrs) return;
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith('on') && typeof value === 'function') {
        element.addEventListener(name.slice(2).toLowerCase(), value);
      } else if (name === 'dataset') {
        Object.assign(element.dataset, value);
      } else if (name === 'value' && 'value' in element && element.namespaceURI !== 'http://www.w3.org/2000/svg') {
        element.value = value;
      } else {
        element.setAttribute(name, value === true ? '' : String(value));
      }
    }
  }

  function append(element, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      element.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function clear(element) {
    while (element.firstChild) element.removeChild(element.firstChild);
    return element;
  }

  function toast(message, kind) {
    const item = h('div', { class: 'toast' + (kind === 'error' ? ' error' : '') }, message);
    toasts.append(item);
    setTimeout(() => item.remove(), kind === 'error' ? 6000 : 3000);
  }

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  // ---------- formatting ----------

  const pad = (n) => String(n).padStart(2, '0');

  /** `YYYY-MM-DD HH:MM:SS` in UTC, the format of seeds/003. */
  function utcTime(iso) {
    if (!iso) return '-';
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())} ` +
      `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
  }

  /** The zone times are shown in: the server's `api.timezone` (`/api/v1/me`), else UTC. */
  let displayZone = 'UTC';
  let zoneFormat = null;
  function setZone(zone) {
    displayZone = 'UTC';
    zoneFormat = null;
    if (!zone || zone === 'UTC') return;
    try {
      zoneFormat = new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit',
        hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
      displayZone = zone;
    } catch (error) {
      zoneFormat = null;
    }
  }

  /** `YYYY-MM-DD HH:MM:SS` in the operator's zone (UTC on hover where a cell shows it). */
  function absTime(iso) {
    if (!zoneFormat) return utcTime(iso);
    if (!iso) return '-';
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    const parts = Object.fromEntries(zoneFormat.formatToParts(date).map((part) => [part.type, part.value]));
    return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`;
  }

  function relTime(iso) {
    if (!iso) return '';
    const then = new Date(iso).getTime();
    if (Number.isNaN(then)) return '';
    const seconds = Math.round((Date.now() - then) / 1000);
    const future = seconds < 0;
    const s = Math.abs(seconds);
    let text;
    if (s < 45) text = 'just now';
    else if (s < 3600) text = `${Math.round(s / 60)} min`;
    else if (s < 86400) text = `${Math.round(s / 3600)} h`;
    else if (s < 86400 * 45) text = `${Math.round(s / 86400)} d`;
    else if (s < 86400 * 365) text = `${Math.round(s / (86400 * 30))} mo`;
    else text = `${(s / (86400 * 365)).toFixed(1)} y`;
    if (text === 'just now') return text;
    return future ? `in ${text}` : `${text} ago`;
  }

  /** An absolute time with the relative one under it (or beside it when inline). */
  function timeCell(iso, inline) {
    const rel = relTime(iso);
    const title = iso ? `${utcTime(iso)} UTC` : '';
    if (inline) return h('span', { class: 'nowrap', title }, absTime(iso), rel ? h('span', { class: 'faint' }, ` · ${rel}`) : null);
    return [h('div', { class: 'nowrap', title }, absTime(iso)), h('div', { class: 'line2 nowrap' }, rel)];
  }

  const fmtInt = (n) => (n === null || n === undefined ? '-' : Number(n).toLocaleString('en-US'));
  const pct = (x) => (x === null || x === undefined ? '-' : `${(x * 100).toFixed(x < 0.1 ? 1 : 0)}%`);
  const PROVIDERS = { aws: 'AWS', huawei: 'Huawei', tencent: 'Tencent' };

  /**
   * Rule texts mark names with backticks (`AdministratorAccess`): show those
   * as code, the rest as text (never as HTML).
   */
  function richText(text) {
    const parts = String(text || '').split('`');
    if (parts.length % 2 === 0) return String(text); // an unpaired backtick: show it as written
    return parts.map((part, index) => (index % 2 ? h('code', null, part) : part)).filter((part) => part !== '');
  }

  function levelBadge(level) {
    const name = LEVELS.includes(level) ? level : 'info';
    return h('span', { class: `badge level-${name}` }, level ? level[0].toUpperCase() + level.slice(1) : 'Info');
  }

  function statusPill(status) {
    const label = { unprocessed: 'Unprocessed', processed: 'Processed', ignored: 'Ignored' }[status] || status;
    return h('span', { class: `pill status-${status}`, dataset: { status } }, label);
  }

  function providerChip(provider) {
    return h('span', { class: `chip provider-${provider}` }, PROVIDERS[provider] || provider || '?');
  }

  async function copyText(text) {
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
      } else {
        const area = h('textarea', { class: 'offscreen', readonly: true });
        area.value = text;
        document.body.append(area);
        area.select();
        document.execCommand('copy');
        area.remove();
      }
      toast(`Copied ${text}`);
    } catch (error) {
      toast(`Could not copy: ${error.message}`, 'error');
    }
  }

  function copyButton(text, label) {
    return h('button', {
      type: 'button', class: 'icon copy', title: `Copy ${label}`, 'aria-label': `Copy ${label}`,
      onclick: (event) => { event.stopPropagation(); copyText(text); },
    }, copyIcon());
  }

  function copyIcon() {
    return svg('svg', { width: 13, height: 13, viewBox: '0 0 16 16', 'aria-hidden': 'true' },
      svg('rect', { x: 5.5, y: 5.5, width: 8, height: 9, rx: 1.5, fill: 'none', stroke: 'currentColor', 'stroke-width': 1.4 }),
      svg('path', { d: 'M3.5 10.5 H3 A1.5 1.5 0 0 1 1.5 9 V3 A1.5 1.5 0 0 1 3 1.5 H9 A1.5 1.5 0 0 1 10.5 3 V3.5', fill: 'none', stroke: 'currentColor', 'stroke-width': 1.4 }));
  }

  function maskedKey(key, remark, temporary) {
    if (!key) return h('span', { class: 'faint' }, '-');
    return h('div', null,
      h('span', { class: 'key' }, h('span', { class: 'key-text' }, key), copyButton(key, 'access key'),
        temporary ? h('span', { class: 'chip temp', title: 'Temporary (STS) credentials' }, 'temp') : null),
      h('div', { class: 'line2 remark' }, remark || '-'));
  }

  function identityText(alarm) {
    const owner = alarm.account_name || alarm.account_id || '?';
    if (alarm.account_identity === 'root') return 'Root account';
    if (alarm.account_identity === 'sub_account') return `Sub-account of root ${owner}`;
    return 'Identity unknown';
  }

  // ---------- API ----------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

  async function api(path, options) {
    const method = (options && options.method) || 'GET';
    const headers = { Accept: 'application/json', Authorization: `Bearer ${token()}` };
    let body;
    if (options && options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body, cache: 'no-store' });
    } catch (error) {
      throw new ApiError(0, 'network', `Cannot reach the trailwarden daemon (${error.message}).`);
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    if (!response.ok) {
      const message = (data && data.error && data.error.message) || `${response.status} ${response.statusText || 'error'}`;
      const code = data && data.error && data.error.code;
      if (response.status === 401) {
        signOut(message);
      }
      throw new ApiError(response.status, code, message);
    }
    return data;
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.me = null;
    state.rules = null;
    state.listKey = null;
    state.page = null;
    state.signinMessage = message || '';
    render();
  }

  const canAct = () => state.me && (state.me.role === 'operator' || state.me.role === 'admin');
  const isAdmin = () => state.me && state.me.role === 'admin';

  // ---------- routing ----------

  function parseHash() {
    const raw = location.hash.slice(1) || '/alarms';
    const mark = raw.indexOf('?');
    const path = mark >= 0 ? raw.slice(0, mark) : raw;
    const params = new URLSearchParams(mark >= 0 ? raw.slice(mark + 1) : '');
    return { parts: path.split('/').filter(Boolean), params };
  }

  function go(path, params) {
    const query = params ? params.toString() : '';
    const next = '#' + path + (query ? `?${query}` : '');
    if (location.hash !== next) location.hash = next;
    else render();
  }

  window.addEventListener('hashchange', () => render());

  async function render() {
    if (!token()) {
      renderSignin();
      return;
    }
    if (!state.me) {
      try {
        state.me = await api('/api/v1/me');
        setZone(state.me.timezone);
      } catch (error) {
        if (error.status === 401) return; // signOut already rendered the sign-in page
        renderFatal(error);
        return;
      }
    }
    const { parts, params } = parseHash();
    const page = parts[0] || 'alarms';
    if (page === 'rules') return mountPage('rules', (element) => rulesPage(element));
    if (page === 'activity') return mountPage('activity', (element) => activityPage(element, params));
    if (page === 'allowlist') return mountPage('allowlist', (element) => allowlistPage(element));
    if (page === 'events') return mountPage('events', (element) => eventsPage(element, params));
    if (page === 'directory') return mountPage('directory', (element) => directoryPage(element));
    if (page !== 'alarms') {
      go('/alarms');
      return;
    }
    if (state.page !== 'alarms') mountPage('alarms', (element) => alarmsShell(element));
    syncAlarms(params, parts[1] ? Number(parts[1]) : null);
  }

  function mountPage(name, build) {
    state.page = name;
    state.listKey = null;
    clear(app);
    app.append(topbar(name));
    const page = h('main', { class: 'page', id: `page-${name}` });
    app.append(page);
    closeDrawer();
    build(page);
    markSuppressedHighs();
  }

  /**
   * A policy that silences a high-level rule is never silent: the Allowlist
   * link carries the number of high matches the policies suppressed.
   */
  async function markSuppressedHighs() {
    try {
      const policies = await api('/api/v1/allowlist');
      const high = (policies || []).reduce((sum, policy) => sum + (Number(policy.high_hits) || 0), 0);
      const link = document.getElementById('nav-allowlist');
      if (!link || !high) return;
      link.append(h('span', { class: 'nav-badge', id: 'nav-allowlist-high', title: `${high} matches of high-level rules suppressed by allowlist policies` }, fmtInt(high)));
    } catch (error) {
      // The badge is a hint; the page itself reports errors.
    }
  }

  function topbar(active) {
    const link = (name, label) => h('a', { href: `#/${name}`, class: active === name ? 'active' : null, id: `nav-${name}` }, label);
    return h('header', { class: 'topbar' },
      h('div', { class: 'brand' }, h('span', { class: 'brand-mark' }, brandIcon()), 'trailwarden'),
      h('nav', { class: 'nav' }, link('alarms', 'Alarms'), link('activity', 'God view'), link('events', 'Events'), link('rules', 'Rules'), link('allowlist', 'Allowlist'), link('directory', 'Assets & remarks')),
      h('div', { class: 'spacer' }),
      h('div', { class: 'whoami' },
        h('span', { class: 'faint', id: 'time-zone' }, `times in ${displayZone}`),
        h('span', { id: 'me-name' }, state.me ? state.me.name : ''),
        h('span', { class: 'role' }, state.me ? state.me.role : ''),
        h('button', { type: 'button', class: 'small', id: 'signout', onclick: () => signOut('Signed out.') }, 'Sign out')));
  }

  function brandIcon() {
    return svg('svg', { width: 14, height: 14, viewBox: '0 0 16 16', 'aria-hidden': 'true' },
      svg('path', { d: 'M8 1 L14 4 V8 C14 11.5 11.3 14.2 8 15 C4.7 14.2 2 11.5 2 8 V4 Z', fill: 'none', stroke: '#fff', 'stroke-width': 1.6 }),
      svg('path', { d: 'M5 8 L7.2 10.2 L11 6', fill: 'none', stroke: '#fff', 'stroke-width': 1.6 }));
  }

  function renderFatal(error) {
    clear(app);
    app.append(h('div', { class: 'signin-wrap' }, h('div', { class: 'signin' },
      h('div', { class: 'brand' }, 'trailwarden'),
      h('div', { class: 'error-box' }, error.message),
      h('button', { type: 'button', class: 'primary', onclick: () => render() }, 'Retry'),
      h('button', { type: 'button', onclick: () => signOut('') }, 'Sign in with another token'))));
  }

  // ---------- sign-in ----------

  function renderSignin() {
    state.page = null;
    closeDrawer();
    clear(app);
    const input = h('input', {
      id: 'signin-token', type: 'password', autocomplete: 'current-password', placeholder: 'API token', required: true,
      'aria-label': 'API token',
    });
    const error = h('div', { class: 'error-box' + (state.signinMessage ? '' : ' hidden'), id: 'signin-error' }, state.signinMessage);
    const button = h('button', { type: 'submit', class: 'primary', id: 'signin-submit' }, 'Sign in');
    const form = h('form', {
      onsubmit: async (event) => {
        event.preventDefault();
        const value = input.value.trim();
        if (!value) return;
        button.disabled = true;
        sessionStorage.setItem(TOKEN_KEY, value);
        try {
          state.me = await api('/api/v1/me');
        setZone(state.me.timezone);
          state.signinMessage = '';
          if (!location.hash || location.hash === '#' || location.hash === '#/') location.hash = '#/alarms';
          render();
        } catch (failure) {
          // A refused token (401) has already brought back this page with
          // the API's message (signOut); drawing it again would replace the
          // field the operator is about to type into.
          if (failure.status === 401) return;
          sessionStorage.removeItem(TOKEN_KEY);
          state.signinMessage = failure.message;
          renderSignin();
        }
      },
    },
    h('label', { class: 'field' }, 'Token', input, h('span', { class: 'hint' }, 'One of the tokens in [api.tokens]; kept only for this browser tab.')),
    h('p', { class: 'hint', id: 'signin-where' },
      'Where is it? With no ', h('code', null, '[[api.tokens]]'), ' configured, the daemon writes an admin token to ',
      h('code', null, 'console-token'), ' next to its store (', h('code', null, 'data/console-token'),
      ' with the default configuration) and prints the path when it starts. Otherwise ask your admin, or make one with ',
      h('code', null, 'trailwarden api new-token'), '.'),
    error, button);
    app.append(h('div', { class: 'signin-wrap', id: 'signin' }, h('div', { class: 'signin' },
      h('div', { class: 'brand' }, h('span', { class: 'brand-mark' }, brandIcon()), 'trailwarden'),
      h('p', null, 'Cloud audit alarms for Huawei CTS, Tencent CloudAudit and AWS CloudTrail. Sign in with your API token.'),
      form)));
    input.focus();
  }

  // ---------- alarm list ----------

  /** The list's filters, normalised (empty values dropped, limit clamped). */
  function listParams(params) {
    const out = new URLSearchParams();
    for (const key of LIST_KEYS) {
      const value = params.get(key);
      if (value !== null && value !== '') out.set(key, value);
    }
    const limit = Math.min(MAX_LIMIT, Math.max(1, Number(out.get('limit')) || DEFAULT_LIMIT));
    out.set('limit', String(limit));
    const offset = Math.max(0, Number(out.get('offset')) || 0);
    out.set('offset', String(offset));
    if (!out.get('sort')) out.set('sort', 'time');
    if (!out.get('order')) out.set('order', 'desc');
    return out;
  }

  const ui = {}; // elements of the mounted alarm page

  function alarmsShell(page) {
    const onFilter = (name) => (event) => setFilter(name, event.target.value);
    const debounced = {};
    const onText = (name) => {
      debounced[name] = debounce((value) => setFilter(name, value.trim()), 300);
      return (event) => debounced[name](event.target.value);
    };
    const statusTabs = h('div', { class: 'status-tabs', role: 'tablist', id: 'f-status' },
      [['', 'All'], ...STATUSES.map((status) => [status, status[0].toUpperCase() + status.slice(1)])].map(([value, label]) =>
        h('button', { type: 'button', dataset: { value }, onclick: () => setFilter('status', value) }, label)));
    ui.statusTabs = statusTabs;
    ui.level = h('select', { id: 'f-level', onchange: onFilter('level') },
      h('option', { value: '' }, 'Any level'),
      LEVELS.map((level) => h('option', { value: level }, level === 'info' ? 'Info and above' : `${level[0].toUpperCase()}${level.slice(1)}${level === 'high' ? '' : ' and above'}`)));
    ui.rule = h('select', { id: 'f-rule', onchange: onFilter('rule') }, h('option', { value: '' }, 'Any rule'));
    ui.account = h('input', { id: 'f-account', type: 'search', placeholder: 'ID or name', oninput: onText('account') });
    ui.key = h('input', { id: 'f-key', type: 'search', placeholder: 'Access key', oninput: onText('key') });
    ui.q = h('input', { id: 'f-q', type: 'search', placeholder: 'Title, principal, output…', oninput: onText('q') });
    ui.range = h('select', { id: 'f-range', onchange: (event) => setRange(event.target.value) },
      h('option', { value: '' }, 'Any time'),
      h('option', { value: '24h' }, 'Last 24 hours'),
      h('option', { value: '7d' }, 'Last 7 days'),
      h('option', { value: '30d' }, 'Last 30 days'),
      h('option', { value: 'custom' }, 'Custom range…'));
    ui.since = h('input', { id: 'f-since', type: 'datetime-local', step: 1, onchange: (event) => setFilter('since', localToIso(event.target.value)) });
    ui.until = h('input', { id: 'f-until', type: 'datetime-local', step: 1, onchange: (event) => setFilter('until', localToIso(event.target.value)) });
    ui.custom = h('span', { class: 'hidden', id: 'f-custom' },
      h('label', { class: 'field' }, 'From (UTC)', ui.since), ' ', h('label', { class: 'field' }, 'To (UTC)', ui.until));
    ui.total = h('span', { class: 'sub', id: 'alarm-total' });
    ui.error = h('div', { class: 'error-box hidden', id: 'list-error' });
    ui.tbody = h('tbody');
    ui.head = h('thead');
    ui.table = h('table', { id: 'alarm-table' }, ui.head, ui.tbody);
    ui.pager = h('div', { class: 'pager', id: 'pager' });

    page.append(
      h('div', { class: 'page-head' }, h('h1', null, 'Alarms'), ui.total),
      ui.error,
      h('div', { class: 'panel' },
        h('div', { class: 'filters' },
          h('div', { class: 'field' }, 'Status', statusTabs),
          h('label', { class: 'field' }, 'Level', ui.level),
          h('label', { class: 'field' }, 'Rule', ui.rule),
          h('label', { class: 'field' }, 'Account', ui.account),
          h('label', { class: 'field' }, 'Access key', ui.key),
          h('label', { class: 'field grow' }, 'Search', ui.q),
          h('label', { class: 'field' }, 'Alarm time', ui.range),
          ui.custom,
          h('div', { class: 'actions' },
            h('button', { type: 'button', id: 'f-reset', onclick: () => go('/alarms') }, 'Reset'),
            h('button', { type: 'button', id: 'f-refresh', onclick: () => { state.listKey = null; render(); } }, 'Refresh'))),
        h('div', { class: 'table-wrap' }, ui.table),
        ui.pager));
    loadRuleOptions();
  }

  async function loadRules() {
    if (state.rules) return state.rules;
    const data = await api('/api/v1/rules');
    state.rules = data;
    return data;
  }

  async function loadRuleOptions() {
    try {
      const data = await loadRules();
      const current = parseHash().params.get('rule') || '';
      const rules = (data.rules || []).slice().sort((a, b) => a.id.localeCompare(b.id));
      clear(ui.rule).append(h('option', { value: '' }, 'Any rule'),
        ...rules.map((rule) => h('option', { value: rule.id, title: rule.title }, rule.id)));
      if (current && !rules.some((rule) => rule.id === current)) ui.rule.append(h('option', { value: current }, current));
      ui.rule.value = current;
    } catch (error) {
      if (error.status !== 401) console.warn('rules for the filter:', error.message);
    }
  }

  function localToIso(value) {
    if (!value) return '';
    return (value.length === 16 ? `${value}:00` : value) + 'Z';
  }

  function isoToLocal(value) {
    if (!value || !/^\d{4}-\d{2}-\d{2}T/.test(value)) return '';
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) return '';
    return date.toISOString().slice(0, 19);
  }

  function currentList() {
    return listParams(parseHash().params);
  }

  function setFilter(name, value) {
    const params = currentList();
    if (value) params.set(name, value);
    else params.delete(name);
    if (name !== 'offset') params.set('offset', '0');
    go('/alarms', compactParams(params));
  }

  function setRange(value) {
    const params = currentList();
    params.delete('until');
    if (value === 'custom') {
      ui.custom.classList.remove('hidden');
      params.delete('since');
      params.set('range', 'custom');
    } else if (value) {
      params.set('since', value);
    } else {
      params.delete('since');
    }
    params.set('offset', '0');
    go('/alarms', compactParams(params));
  }

  /** Defaults are left out of the URL to keep it short. */
  function compactParams(params) {
    const out = new URLSearchParams(params);
    if (out.get('sort') === 'time') out.delete('sort');
    if (out.get('order') === 'desc') out.delete('order');
    if (out.get('offset') === '0') out.delete('offset');
    if (out.get('limit') === String(DEFAULT_LIMIT)) out.delete('limit');
    return out;
  }

  function syncFilterInputs(params) {
    const status = params.get('status') || '';
    for (const button of ui.statusTabs.children) button.classList.toggle('active', button.dataset.value === status);
    ui.level.value = params.get('level') || '';
    if (ui.rule.value !== (params.get('rule') || '')) {
      const rule = params.get('rule') || '';
      if (rule && ![...ui.rule.options].some((option) => option.value === rule)) ui.rule.append(h('option', { value: rule }, rule));
      ui.rule.value = rule;
    }
    for (const name of ['account', 'key', 'q']) {
      if (document.activeElement !== ui[name]) ui[name].value = params.get(name) || '';
    }
    const since = params.get('since') || '';
    const until = params.get('until') || '';
    const preset = ['24h', '7d', '30d'].includes(since) && !until ? since : '';
    const custom = parseHash().params.get('range') === 'custom' || (!preset && (since || until));
    ui.range.value = custom ? 'custom' : preset;
    ui.custom.classList.toggle('hidden', !custom);
    if (document.activeElement !== ui.since) ui.since.value = isoToLocal(since);
    if (document.activeElement !== ui.until) ui.until.value = isoToLocal(until);
  }

  async function syncAlarms(rawParams, detailId) {
    const params = listParams(rawParams);
    syncFilterInputs(params);
    const key = params.toString();
    if (state.listKey !== key) {
      state.listKey = key;
      await loadList(params);
    } else {
      markSelected(detailId);
    }
    if (detailId) openDetail(detailId);
    else closeDrawer();
  }

  async function loadList(params) {
    const seq = ++state.listSeq;
    ui.table.classList.add('loading');
    try {
      const data = await api(`/api/v1/alarms?${params.toString()}`);
      if (seq !== state.listSeq) return;
      state.list = data;
      ui.error.classList.add('hidden');
      renderList(params, data);
    } catch (error) {
      if (seq !== state.listSeq || error.status === 401) return;
      state.listKey = null;
      ui.error.textContent = error.message;
      ui.error.classList.remove('hidden');
    } finally {
      if (seq === state.listSeq) ui.table.classList.remove('loading');
    }
  }

  function renderList(params, data) {
    const sort = params.get('sort');
    const order = params.get('order');
    const sortable = (label, field, extra) => h('th', {
      class: `sortable ${extra || ''}`, dataset: { sort: field }, title: `Sort by ${label.toLowerCase()}`,
      onclick: () => {
        const next = currentList();
        const nextOrder = sort === field && order === 'desc' ? 'asc' : 'desc';
        next.set('sort', field);
        next.set('order', nextOrder);
        next.set('offset', '0');
        go('/alarms', compactParams(next));
      },
    }, label, sort === field ? h('span', { class: 'arrow' }, order === 'asc' ? '▲' : '▼') : null);
    clear(ui.head).append(h('tr', null,
      h('th', { class: 'col-title' }, 'Alarm name / type'),
      sortable('Level', 'level', 'col-level'),
      h('th', { class: 'col-key' }, 'Access key / remark'),
      h('th', { class: 'col-account' }, 'Account / identity'),
      h('th', { class: 'col-principal' }, 'Principal'),
      sortable('Count', 'count', 'num col-count'),
      sortable('Alarm time', 'time', 'col-time'),
      h('th', { class: 'col-status' }, 'Status'),
      h('th', { class: 'col-actions' }, '')));

    const total = Number(data.total) || 0;
    ui.total.textContent = `${fmtInt(total)} alarm${total === 1 ? '' : 's'}`;
    const fragment = document.createDocumentFragment();
    const items = data.items || [];
    for (const alarm of items) fragment.append(alarmRow(alarm, params));
    clear(ui.tbody);
    if (items.length === 0) {
      ui.tbody.append(h('tr', null, h('td', { colspan: 9, class: 'empty' }, total ? 'No alarms on this page.' : 'No alarms match these filters.')));
    } else {
      ui.tbody.append(fragment);
    }
    renderPager(params, data);
    const { parts } = parseHash();
    markSelected(parts[1] ? Number(parts[1]) : null);
  }

  function alarmRow(alarm, params) {
    const open = () => go(`/alarms/${alarm.id}`, compactParams(params));
    const accountTitle = [
      `Account ID: ${alarm.account_id || '-'}`,
      alarm.account_name ? `Account name: ${alarm.account_name}` : null,
      alarm.principal_arn ? `Principal: ${alarm.principal_arn}` : null,
    ].filter(Boolean).join('\n');
    return h('tr', { class: 'clickable', dataset: { id: alarm.id, level: alarm.level, rule: alarm.rule, status: alarm.status }, onclick: open },
      h('td', { class: 'title-cell' },
        h('a', { class: 'title', href: `#/alarms/${alarm.id}?${compactParams(params)}`, onclick: (event) => event.stopPropagation() }, alarm.title || alarm.rule),
        h('div', { class: 'rule' }, `#${alarm.id} · ${alarm.rule}`)),
      h('td', null, levelBadge(alarm.level)),
      h('td', null, maskedKey(alarm.access_key_id, alarm.access_key_remark, alarm.access_key_temporary)),
      h('td', { title: accountTitle },
        h('div', null, providerChip(alarm.provider), ' ', alarm.account_name || h('span', { class: 'mono' }, alarm.account_id || '-')),
        h('div', { class: 'line2' }, identityText(alarm))),
      h('td', null,
        h('div', null, alarm.principal_name || alarm.principal_id || '-'),
        h('div', { class: 'line2' }, alarm.principal_kind || '')),
      h('td', { class: 'num' }, fmtInt(alarm.count)),
      h('td', { title: `First seen ${absTime(alarm.first_seen)}\nLast seen ${absTime(alarm.last_seen)}` }, timeCell(alarm.last_seen)),
      h('td', null, statusPill(alarm.status)),
      h('td', null, h('button', { type: 'button', class: 'small', onclick: (event) => { event.stopPropagation(); open(); } }, 'Details')));
  }

  function markSelected(id) {
    if (!ui.tbody) return;
    for (const row of ui.tbody.children) row.classList.toggle('selected', id !== null && Number(row.dataset.id) === id);
  }

  function renderPager(params, data) {
    const total = Number(data.total) || 0;
    const limit = Number(params.get('limit'));
    const offset = Number(params.get('offset'));
    const shown = (data.items || []).length;
    const pages = Math.max(1, Math.ceil(total / limit));
    const page = Math.floor(offset / limit) + 1;
    const goOffset = (value) => {
      const next = currentList();
      next.set('offset', String(Math.max(0, value)));
      go('/alarms', compactParams(next));
    };
    const size = h('select', {
      id: 'page-size', onchange: (event) => {
        const next = currentList();
        next.set('limit', event.target.value);
        next.set('offset', '0');
        go('/alarms', compactParams(next));
      },
    }, PAGE_SIZES.map((n) => h('option', { value: n }, `${n} per page`)));
    size.value = String(limit);
    clear(ui.pager).append(
      h('span', null, shown ? `${fmtInt(offset + 1)}–${fmtInt(offset + shown)} of ${fmtInt(total)}` : `0 of ${fmtInt(total)}`),
      h('span', { class: 'spacer' }),
      size,
      h('button', { type: 'button', class: 'small', id: 'page-first', disabled: offset <= 0, onclick: () => goOffset(0) }, '«'),
      h('button', { type: 'button', class: 'small', id: 'page-prev', disabled: offset <= 0, onclick: () => goOffset(offset - limit) }, '‹ Prev'),
      h('span', null, `Page ${fmtInt(page)} of ${fmtInt(pages)}`),
      h('button', { type: 'button', class: 'small', id: 'page-next', disabled: offset + limit >= total, onclick: () => goOffset(offset + limit) }, 'Next ›'),
      h('button', { type: 'button', class: 'small', id: 'page-last', disabled: offset + limit >= total, onclick: () => goOffset((pages - 1) * limit) }, '»'));
  }

  // ---------- alarm detail drawer ----------

  let drawer = null;

  function closeDrawer() {
    if (drawer) {
      drawer.remove();
      drawer = null;
    }
    markSelected(null);
  }

  function closeDetail() {
    go('/alarms', compactParams(currentList()));
  }

  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && drawer && !document.querySelector('dialog[open]')) closeDetail();
  });

  async function openDetail(id) {
    const seq = ++state.detailSeq;
    if (!drawer || Number(drawer.dataset.id) !== id) {
      closeDrawer();
      drawer = h('aside', { class: 'drawer', id: 'drawer', dataset: { id }, 'aria-label': `Alarm ${id}` },
        h('div', { class: 'drawer-head' }, h('div', { class: 'row1' }, h('h2', null, `Alarm #${id}`),
          h('button', { type: 'button', class: 'icon', title: 'Close', onclick: closeDetail }, '✕'))),
        h('div', { class: 'drawer-body' }, h('div', { class: 'empty' }, 'Loading…')));
      document.body.append(drawer);
    }
    markSelected(id);
    try {
      const detail = await api(`/api/v1/alarms/${id}`);
      if (seq !== state.detailSeq || !drawer) return;
      fillDrawer(detail);
    } catch (error) {
      if (seq !== state.detailSeq || !drawer || error.status === 401) return;
      clear(drawer.querySelector('.drawer-body')).append(h('div', { class: 'error-box' }, error.message));
    }
  }

  function fillDrawer(alarm) {
    const rule = alarm.rule && typeof alarm.rule === 'object' ? alarm.rule : null;
    const ruleId = rule ? rule.id : alarm.rule;
    const actions = h('div', { class: 'drawer-actions' });
    const disabledWhy = canAct() ? null : 'Your role can only view alarms';
    if (alarm.status !== 'processed') {
      actions.append(h('button', { type: 'button', class: 'primary', id: 'act-processed', disabled: !canAct(), title: disabledWhy,
        onclick: () => confirmStatus(alarm, 'processed') }, '✓ Mark processed'));
    }
    if (alarm.status !== 'ignored') {
      actions.append(h('button', { type: 'button', id: 'act-ignored', disabled: !canAct(), title: disabledWhy,
        onclick: () => confirmStatus(alarm, 'ignored') }, 'Ignore'));
    }
    if (alarm.status !== 'unprocessed') {
      actions.append(h('button', { type: 'button', id: 'act-reopen', disabled: !canAct(), title: disabledWhy,
        onclick: () => confirmStatus(alarm, 'unprocessed') }, '↺ Reopen'));
    }
    actions.append(h('button', { type: 'button', id: 'act-allowlist', disabled: !canAct(), title: disabledWhy,
      onclick: () => allowlistDrawer(alarm) }, '+ Allowlist policy'));

    const head = clear(drawer.querySelector('.drawer-head'));
    head.append(
      h('div', { class: 'row1' },
        levelBadge(alarm.level),
        h('h2', { id: 'detail-title' }, alarm.title || ruleId),
        statusPill(alarm.status),
        h('button', { type: 'button', class: 'icon', title: 'Close (Esc)', id: 'drawer-close', onclick: closeDetail }, '✕')),
      h('div', { class: 'meta' },
        h('span', { class: 'mono' }, `#${alarm.id}`),
        h('span', { class: 'mono' }, ruleId),
        providerChip(alarm.provider),
        h('span', null, `${fmtInt(alarm.count)} match${alarm.count === 1 ? '' : 'es'}`),
        h('span', null, 'last ', timeCell(alarm.last_seen, true))),
      actions);

    const body = clear(drawer.querySelector('.drawer-body'));
    body.append(ruleSection(rule, alarm), infoSection(alarm), callsSection(alarm), investigationSection(alarm), samplesSection(alarm), historySection(alarm));
  }

  function ruleSection(rule, alarm) {
    if (!rule) {
      return h('section', { id: 'detail-rule' }, h('h3', null, 'Rule'),
        h('p', { class: 'muted' }, `Rule ${alarm.rule} is not in the loaded rule set (removed or renamed since the alarm was raised).`));
    }
    return h('section', { id: 'detail-rule' },
      h('h3', null, 'Rule'),
      h('p', { class: 'description' }, richText(rule.description || rule.title)),
      rule.rationale ? h('div', { class: 'advice why', id: 'detail-rationale' }, h('strong', null, 'Why it matters'), richText(rule.rationale)) : null,
      rule.advice ? h('div', { class: 'advice', id: 'detail-advice' }, h('strong', null, 'What to do'), richText(rule.advice)) : null,
      rule.false_positives ? h('div', { class: 'advice fp' }, h('strong', null, 'Known false positives'), richText(rule.false_positives)) : null,
      rule.tags && rule.tags.length ? h('div', { class: 'line2' }, rule.tags.map((tag) => h('span', { class: 'chip' }, tag))) : null,
      rule.sigma ? h('div', { class: 'line2', id: 'detail-sigma' }, sigmaLabel(rule.sigma)) : null,
      rule.references && rule.references.length ? h('ul', { class: 'references', id: 'detail-references' },
        rule.references.map((reference) => h('li', { class: 'mono' }, reference))) : null);
  }

  function infoSection(alarm) {
    const row = (label, value, wide) => [h('dt', null, label), h('dd', { class: wide ? 'wide' : null }, value)];
    return h('section', { id: 'detail-info' },
      h('h3', null, 'Alarm information'),
      h('dl', { class: 'grid' },
        row('Access key', h('span', null, maskedKey(alarm.access_key_id, alarm.access_key_remark, alarm.access_key_temporary),
          alarm.access_key_id && canAct() ? h('button', { type: 'button', class: 'icon small', id: 'edit-key-remark', title: 'Set the remark on this key',
            onclick: () => editRemark('key', alarm.access_key_id, alarm.access_key_remark, () => openDetail(alarm.id)) }, '✎') : null)),
        row('Account', alarm.account_name
          ? h('div', null, alarm.account_name, h('div', { class: 'line2 mono' }, alarm.account_id || ''))
          : h('span', { class: 'mono' }, alarm.account_id || '-')),
        row('Identity', identityText(alarm)),
        row('Principal', h('div', null, alarm.principal_name || alarm.principal_id || '-',
          h('div', { class: 'line2' }, [alarm.principal_kind, alarm.principal_id].filter(Boolean).join(' · ')))),
        row('First seen', timeCell(alarm.first_seen)),
        row('Last seen', timeCell(alarm.last_seen)),
        alarm.principal_arn ? row('ARN', h('span', { class: 'mono' }, alarm.principal_arn), true) : null,
        row('Group key', h('span', { class: 'mono' }, alarm.group_key || '-'), true),
        row('Output', h('div', { class: 'output' }, alarm.output || '-'), true)));
  }

  /** Call records per source IP: the API's `ip_groups`, else grouped here from `calls`. */
  function ipGroups(alarm) {
    if (Array.isArray(alarm.ip_groups)) return alarm.ip_groups;
    const groups = new Map();
    for (const call of alarm.calls || []) {
      const ip = call.source_ip || '';
      if (!groups.has(ip)) {
        groups.set(ip, { source_ip: ip, ip_type: call.ip_type, ip_label: call.ip_type_label, ip_remark: call.ip_remark, asset: call.asset,
          success_count: 0, failure_count: 0, first_call: call.first_call, last_call: call.last_call, calls: [] });
      }
      const group = groups.get(ip);
      group.success_count += call.success_count || 0;
      group.failure_count += call.failure_count || 0;
      if (call.first_call < group.first_call) group.first_call = call.first_call;
      if (call.last_call > group.last_call) group.last_call = call.last_call;
      group.calls.push(call);
    }
    return [...groups.values()];
  }

  function countSpan(count, kind) {
    const n = Number(count) || 0;
    return h('span', { class: n ? kind : 'zero' }, `${kind === 'ok' ? 'Successful' : 'Failed'} ${fmtInt(n)}`);
  }

  function callsSection(alarm) {
    const groups = ipGroups(alarm);
    const section = h('section', { id: 'detail-calls' }, h('h3', null, `Call records by source IP (${groups.length})`,
      h('a', { class: 'head-link', id: 'alarm-events', href: `#/events?alarm=${alarm.id}`, title: 'Every event of this alarm\'s key (or principal) from its first to its last match' }, 'All events')));
    if (!groups.length) section.append(h('p', { class: 'muted' }, 'No call records.'));
    for (const group of groups) {
      const first = group.calls && group.calls[0];
      const remark = group.ip_remark || (first && first.ip_remark) || '';
      const asset = group.asset || (first && first.asset) || '';
      const region = (group.region && group.region.label) || (first && first.region && first.region.label) || 'region unknown';
      const ip = group.source_ip || '';
      section.append(h('div', { class: 'ip-group', dataset: { ip } },
        h('div', { class: 'ip-group-head' },
          h('span', { class: 'ip' }, ip || h('span', { class: 'faint' }, 'no address'), ip ? copyButton(ip, 'IP address') : null),
          h('span', { class: `chip ip-${group.ip_type || 'none'}` }, group.ip_label || group.ip_type_label || group.ip_type || '-'),
          h('span', { class: 'region', title: 'region (GeoIP)' }, region),
          h('span', { class: 'muted', title: 'IP remark' }, remark || '-',
            ip && canAct() ? h('button', { type: 'button', class: 'icon small edit-ip-remark', title: 'Set the remark on this IP',
              onclick: () => editRemark('ip', ip, remark, () => openDetail(alarm.id)) }, '✎') : null),
          asset ? h('span', { class: 'chip', title: 'asset' }, asset) : null,
          h('span', { class: 'counts' }, countSpan(group.success_count, 'ok'), countSpan(group.failure_count, 'fail')),
          h('span', { class: 'times' }, `${absTime(group.first_call)} → ${absTime(group.last_call)}`)),
        h('table', { class: 'compact' },
          h('thead', null, h('tr', null, h('th', null, 'Method'), h('th', null, 'API / service'), h('th', { class: 'num' }, 'OK'),
            h('th', { class: 'num' }, 'Failed'), h('th', null, 'First call'), h('th', null, 'Most recent call'), h('th', null, ''))),
          h('tbody', null, (group.calls || []).map((call) => h('tr', null,
            h('td', null, call.call_method || '-'),
            h('td', null, h('span', { class: 'mono' }, call.action || '-'), h('span', { class: 'muted' }, ` · ${call.service || '-'}`)),
            h('td', { class: 'num' }, h('span', { class: call.success_count ? 'ok' : 'zero' }, fmtInt(call.success_count))),
            h('td', { class: 'num' }, h('span', { class: call.failure_count ? 'fail' : 'zero' }, fmtInt(call.failure_count))),
            h('td', { class: 'nowrap' }, absTime(call.first_call)),
            h('td', { class: 'nowrap' }, absTime(call.last_call)),
            h('td', null, h('a', { class: 'call-events', href: `#/events?${new URLSearchParams({ alarm: alarm.id, ip, action: call.action || '' })}`,
              title: 'These calls, one by one, with their request ids and bodies' }, 'Events'))))))));
    }
    return section;
  }

  /** AK association risk and permission convergence (the API's `key_association`, `permissions`). */
  function investigationSection(alarm) {
    const section = h('section', { id: 'detail-investigation' }, h('h3', null, 'Key association and permissions'));
    const assoc = alarm.key_association;
    if (assoc) {
      const others = assoc.other_alarms || [];
      section.append(h('p', null, `${others.length} other alarm${others.length === 1 ? '' : 's'} of this key; first used from ${(assoc.source_ips || []).length} address(es) in ${(assoc.accounts || []).join(', ') || 'no known account'}`));
      if (others.length) {
        section.append(h('ul', { class: 'related-alarms' }, others.map((other) => h('li', null,
          h('a', { href: `#/alarms/${other.id}` }, `#${other.id}`), ` ${other.level} ${other.rule} (${other.status}, ×${other.count})`))));
      }
    }
    const perms = alarm.permissions;
    if (perms) {
      const used = perms.used || [];
      const denied = perms.denied || [];
      section.append(h('p', null, `Last ${perms.window_days} days: ${used.length} action${used.length === 1 ? '' : 's'} used, ${denied.length} refused`));
      if (denied.length) {
        section.append(h('ul', { class: 'denied-actions' }, denied.map((entry) => h('li', null,
          h('span', { class: 'mono' }, `${entry.service}.${entry.action}`), ` ${entry.error_code} ×${entry.calls}`))));
      }
      if (perms.least_privilege_policy) {
        section.append(h('p', { class: 'muted' }, `Least-privilege policy from the successful calls (${perms.note}):`),
          h('pre', { class: 'policy' }, JSON.stringify(perms.least_privilege_policy, null, 2)));
      } else {
        section.append(h('p', { class: 'muted' }, perms.note || ''));
      }
    }
    if (!assoc && !perms) section.append(h('p', { class: 'muted' }, 'No access key or principal to look up.'));
    return section;
  }

  function samplesSection(alarm) {
    const samples = alarm.samples || [];
    return h('section', { id: 'detail-samples' },
      h('h3', null, `Sample events (${samples.length})`),
      samples.length ? null : h('p', { class: 'muted' }, 'No samples kept.'),
      samples.map((sample) => {
        const outcome = sample.outcome && sample.outcome.result;
        const code = sample.outcome && sample.outcome.error_code;
        return h('details', { class: 'sample' },
          h('summary', null,
            h('span', { class: 'nowrap' }, absTime(sample.time)),
            h('span', { class: 'mono' }, `${sample.service || '?'}.${sample.action || '?'}`),
            h('span', { class: outcome === 'failure' ? 'fail' : 'ok' }, outcome === 'failure' ? `failed${code ? ` (${code})` : ''}` : 'success'),
            h('span', { class: 'mono muted' }, sample.source_ip || ''),
            h('span', { class: 'muted' }, sample.call_method || '')),
          h('pre', null, JSON.stringify(sample, null, 2)));
      }));
  }

  function historySection(alarm) {
    const history = alarm.history || [];
    return h('section', { id: 'detail-history' },
      h('h3', null, 'Status history'),
      history.length
        ? h('ol', { class: 'timeline' }, history.map((entry) => h('li', null,
          h('div', null, statusPill(entry.from_status || entry.from || 'unprocessed'), ' → ', statusPill(entry.to_status || entry.to || entry.status),
            ' by ', h('strong', null, entry.actor || '?'), h('span', { class: 'muted' }, ` · ${absTime(entry.at || entry.time || entry.changed_at)}`)),
          entry.reason ? h('div', { class: 'reason' }, entry.reason) : null)))
        : h('p', { class: 'muted' }, `Raised ${absTime(alarm.created_at)}; no status changes yet.`));
  }

  // ---------- dialogs ----------

  function modal(build) {
    const dialog = h('dialog', null);
    document.body.append(dialog);
    const close = () => { dialog.close(); dialog.remove(); };
    dialog.addEventListener('cancel', (event) => { event.preventDefault(); close(); });
    build(dialog, close);
    dialog.showModal();
    return dialog;
  }

  function confirmStatus(alarm, status) {
    const verbs = { processed: 'Mark as processed', ignored: 'Ignore', unprocessed: 'Reopen' };
    const explain = {
      processed: 'The alarm is closed: a new match for this rule and key opens a new alarm.',
      ignored: 'The alarm keeps counting matches but is not raised again.',
      unprocessed: 'The alarm goes back to the unprocessed queue.',
    };
    modal((dialog, close) => {
      dialog.id = 'confirm';
      const reason = h('textarea', { id: 'confirm-reason', required: true, maxlength: 2000, placeholder: 'Why? (kept in the alarm history)' });
      const error = h('div', { class: 'error-box hidden', id: 'confirm-error' });
      const ok = h('button', { type: 'submit', class: 'primary', id: 'confirm-ok' }, verbs[status]);
      dialog.append(h('form', {
        onsubmit: async (event) => {
          event.preventDefault();
          const text = reason.value.trim();
          if (!text) {
            error.textContent = 'A reason is required.';
            error.classList.remove('hidden');
            return;
          }
          ok.disabled = true;
          try {
            const updated = await api(`/api/v1/alarms/${alarm.id}/status`, { method: 'POST', body: { status, reason: text } });
            close();
            toast(`Alarm #${alarm.id} is now ${status}.`);
            if (drawer && updated && updated.id === alarm.id) fillDrawer(updated);
            state.listKey = null; // the row's status changed: refetch the page
            const { parts, params } = parseHash();
            if (parts[0] === 'alarms') syncAlarms(params, parts[1] ? Number(parts[1]) : null);
          } catch (failure) {
            ok.disabled = false;
            error.textContent = failure.status === 409 ? `Conflict: ${failure.message}` : failure.message;
            error.classList.remove('hidden');
          }
        },
      },
      h('h2', null, `${verbs[status]}: alarm #${alarm.id}?`),
      h('p', { class: 'muted' }, alarm.title, ' — ', explain[status]),
      h('label', { class: 'field' }, 'Reason', reason),
      error,
      h('div', { class: 'dialog-actions' }, h('button', { type: 'button', id: 'confirm-cancel', onclick: close }, 'Cancel'), ok)));
      setTimeout(() => reason.focus(), 0);
    });
  }

  /** The distinct non-empty values of `pick` over the alarm's call records. */
  function distinct(alarm, pick) {
    return [...new Set((alarm.calls || []).map(pick).filter(Boolean))];
  }

  function allowlistDrawer(alarm) {
    const ruleId = alarm.rule && typeof alarm.rule === 'object' ? alarm.rule.id : alarm.rule;
    const ips = distinct(alarm, (call) => call.source_ip);
    const apis = distinct(alarm, (call) => (call.service && call.action ? `${call.service}.${call.action}` : ''));
    const methods = distinct(alarm, (call) => call.call_method);
    modal((dialog, close) => {
      dialog.id = 'allowlist';
      dialog.classList.add('side');
      const useKey = h('input', { type: 'checkbox', id: 'al-use-key', checked: Boolean(alarm.access_key_id), disabled: !alarm.access_key_id });
      const ip = h('input', { id: 'al-ip', value: ips.length === 1 ? ips[0] : '', placeholder: ips.length > 1 ? `${ips.length} IPs: ${ips.slice(0, 3).join(', ')}…` : 'IP or CIDR' });
      const apiField = h('input', { id: 'al-api', value: apis.length === 1 ? apis[0] : '', placeholder: 'service.Action glob, e.g. cam.*' });
      const operation = h('input', { id: 'al-operation', placeholder: 'e.g. iam.access_key.*' });
      const method = h('select', { id: 'al-method' }, h('option', { value: '' }, 'Any'),
        ['console', 'api', 'system', 'other'].map((m) => h('option', { value: m }, m)));
      method.value = methods.length === 1 ? methods[0] : '';
      const errorCode = h('input', { id: 'al-error-code', placeholder: 'e.g. AccessDenied' });
      const rule = h('input', { id: 'al-rule', value: ruleId || '' });
      const expires = h('select', { id: 'al-expires' }, h('option', { value: '' }, 'Never'),
        [['7d', '7 days'], ['30d', '30 days'], ['90d', '90 days'], ['365d', '1 year']].map(([v, label]) => h('option', { value: v }, label)));
      expires.value = '30d';
      const reason = h('textarea', { id: 'al-reason', required: true, placeholder: 'Why is this pattern known-good?' });
      const broad = isAdmin() ? h('input', { type: 'checkbox', id: 'al-allow-broad' }) : null;
      const error = h('div', { class: 'error-box hidden', id: 'al-error' });
      const submit = h('button', { type: 'submit', class: 'primary', id: 'al-submit' }, 'Create policy');
      dialog.append(h('form', {
        onsubmit: async (event) => {
          event.preventDefault();
          const body = { reason: reason.value.trim() };
          if (!body.reason) {
            error.textContent = 'A reason is required.';
            error.classList.remove('hidden');
            return;
          }
          if (useKey.checked) body.from_alarm = alarm.id;
          const fields = { ip: ip.value, api: apiField.value, operation: operation.value, call_method: method.value,
            error_code: errorCode.value, rule: rule.value, expires: expires.value };
          for (const [name, value] of Object.entries(fields)) if (value && value.trim()) body[name] = value.trim();
          if (broad && broad.checked) body.allow_broad = true;
          submit.disabled = true;
          try {
            const policy = await api('/api/v1/allowlist', { method: 'POST', body });
            close();
            toast(`Allowlist policy${policy && policy.id !== undefined ? ` #${policy.id}` : ''} created.`);
          } catch (failure) {
            submit.disabled = false;
            error.textContent = failure.message;
            error.classList.remove('hidden');
          }
        },
      },
      h('h2', null, 'Allowlist policy'),
      h('p', { class: 'muted' }, `Prefilled from alarm #${alarm.id}. Matches of rules that fit every filled field are suppressed and counted on the policy; an empty field matches anything.`),
      h('label', { class: 'checkline' }, useKey, 'Access key ', h('span', { class: 'key' }, alarm.access_key_id || '(none)'), h('span', { class: 'faint' }, ' from the alarm')),
      h('div', { class: 'two' },
        h('label', { class: 'field' }, 'Source IP / CIDR', ip),
        h('label', { class: 'field' }, 'Call method', method)),
      h('div', { class: 'two' },
        h('label', { class: 'field' }, 'API (glob)', apiField),
        h('label', { class: 'field' }, 'Operation (glob)', operation)),
      h('div', { class: 'two' },
        h('label', { class: 'field' }, 'Response / error code', errorCode),
        h('label', { class: 'field' }, 'Rule', rule)),
      h('label', { class: 'field' }, 'Expires', expires),
      h('label', { class: 'field' }, 'Reason', reason),
      broad ? h('label', { class: 'checkline' }, broad, 'Allow a broad policy (admin override: recorded, notified)') : null,
      h('p', { class: 'faint' }, `Recorded as created by ${state.me ? state.me.name : 'this token'}. A policy that matches every API or operation, a whole address space, or nothing narrower than a rule is refused unless an admin overrides it.`),
      error,
      h('div', { class: 'dialog-actions' }, h('button', { type: 'button', id: 'al-cancel', onclick: close }, 'Cancel'), submit)));
      setTimeout(() => reason.focus(), 0);
    });
  }

  // ---------- allowlist page ----------

  async function allowlistPage(page) {
    const body = h('div', null, h('div', { class: 'empty' }, 'Loading the allowlist…'));
    page.append(h('div', { class: 'page-head' }, h('h1', null, 'Allowlist'), h('span', { class: 'sub', id: 'allowlist-count' })), body);
    try {
      const [policies, changes] = await Promise.all([api('/api/v1/allowlist'), api('/api/v1/changes?limit=50')]);
      renderAllowlist(page, body, policies || [], changes || []);
    } catch (error) {
      if (error.status !== 401) clear(body).append(h('div', { class: 'error-box' }, error.message));
    }
  }

  function policyMatches(policy) {
    const parts = [['key', policy.access_key], ['ip', policy.source_ip], ['api', policy.api], ['operation', policy.operation],
      ['method', policy.call_method], ['error', policy.error_code], ['rule', policy.rule_id]];
    return parts.filter(([, value]) => value).map(([label, value]) => h('span', { class: 'chip' }, h('span', { class: 'faint' }, `${label} `), value));
  }

  function renderAllowlist(page, body, policies, changes) {
    const high = policies.reduce((sum, policy) => sum + (Number(policy.high_hits) || 0), 0);
    const broad = policies.filter((policy) => policy.broad).length;
    page.querySelector('#allowlist-count').textContent =
      `${policies.length} polic${policies.length === 1 ? 'y' : 'ies'}, ${broad} broad, ${fmtInt(high)} high-level matches suppressed`;
    const warning = high ? h('div', { class: 'error-box', id: 'allowlist-high' },
      `Allowlist policies have suppressed ${fmtInt(high)} match${high === 1 ? '' : 'es'} of high-level rules: `,
      policies.filter((policy) => policy.high_hits).map((policy) => `#${policy.id} (${fmtInt(policy.high_hits)})`).join(', '),
      '. Review them below.') : null;
    const rows = policies.map((policy) => h('tr', { dataset: { id: policy.id } },
      h('td', { class: 'mono' }, `#${policy.id}`),
      h('td', null, h('span', { class: `chip ${policy.state === 'active' ? 'on' : 'off'}` }, policy.state),
        policy.broad ? h('span', { class: 'chip bad', title: `${policy.broad} — allowed by ${policy.approved_by}` }, 'broad') : null),
      h('td', null, policyMatches(policy)),
      h('td', { class: 'num' }, fmtInt(policy.hit_count)),
      h('td', { class: `num${policy.high_hits ? ' fail' : ''}` }, fmtInt(policy.high_hits)),
      h('td', null, policy.last_hit ? timeCell(policy.last_hit) : '-'),
      h('td', null, policy.expires_at ? timeCell(policy.expires_at) : 'never'),
      h('td', null, h('div', null, policy.created_by), h('div', { class: 'faint' }, policy.via)),
      h('td', { class: 'line2' }, policy.reason),
      h('td', { class: 'nowrap' }, canAct() ? [
        h('button', { type: 'button', class: 'small policy-expiry', onclick: () => editExpiry(page, policy) }, 'Expiry'), ' ',
        h('button', { type: 'button', class: 'small policy-remove', onclick: () => confirmRemovePolicy(page, policy) }, 'Remove')] : null)));
    if (!rows.length) rows.push(h('tr', null, h('td', { colspan: 10, class: 'empty' }, 'No allowlist policies.')));
    const changeRows = changes.map((change) => h('tr', null,
      h('td', { class: 'nowrap' }, timeCell(change.at)),
      h('td', { class: 'nowrap' }, h('div', null, change.actor), h('div', { class: 'faint' }, change.via)),
      h('td', { class: 'nowrap' }, `${change.action} ${change.subject} #${change.subject_id}`),
      h('td', { class: 'mono line2' }, JSON.stringify(change.detail))));
    if (!changeRows.length) changeRows.push(h('tr', null, h('td', { colspan: 4, class: 'empty' }, 'No changes recorded.')));
    clear(body).append(warning,
      h('div', { class: 'panel' },
        h('div', { class: 'panel-head' }, h('h2', null, 'Policies')),
        h('div', { class: 'table-wrap' }, h('table', { id: 'allowlist-table' },
          h('thead', null, h('tr', null, ['ID', 'State', 'Matches', 'Hits', 'High', 'Last hit', 'Expires', 'Created by', 'Reason', ''].map((label) => h('th', null, label)))),
          h('tbody', null, rows)))),
      h('div', { class: 'panel' },
        h('div', { class: 'panel-head' }, h('h2', null, 'Change log'), h('span', { class: 'sub' }, 'policies, remarks and assets; sealed by the hash chain')),
        h('div', { class: 'table-wrap' }, h('table', { id: 'changes-table' },
          h('thead', null, h('tr', null, ['When', 'Who', 'What', 'Detail'].map((label) => h('th', null, label)))),
          h('tbody', null, changeRows)))));
  }

  /** Change when a policy stops matching (PATCH /api/v1/allowlist/ID). */
  function editExpiry(page, policy) {
    modal((dialog, close) => {
      dialog.id = 'edit-expiry';
      const error = h('div', { class: 'error-box hidden' });
      const input = h('input', { id: 'expiry-input', value: policy.expires_at || '', placeholder: '30d, 2026-12-31, 2026-12-31T18:00:00Z or never', size: 36 });
      const save = async (value) => {
        ok.disabled = true;
        try {
          const updated = await api(`/api/v1/allowlist/${policy.id}`, { method: 'PATCH', body: { expires: value } });
          close();
          toast(updated.warning || `Allowlist policy #${policy.id} now ${updated.expires_at ? `expires ${absTime(updated.expires_at)}` : 'never expires'}.`);
          clear(page);
          allowlistPage(page);
        } catch (failure) {
          ok.disabled = false;
          error.textContent = failure.message;
          error.classList.remove('hidden');
        }
      };
      const ok = h('button', { type: 'button', class: 'primary', id: 'expiry-ok', onclick: () => save(input.value.trim() || 'never') }, 'Save');
      dialog.append(h('h2', null, `Expiry of allowlist policy #${policy.id}`),
        h('p', { class: 'muted' }, 'When the policy stops matching: a duration from now, a date or time (UTC), or never. The change is recorded with your token\'s name and notified.'),
        input, error,
        h('div', { class: 'dialog-actions' },
          h('button', { type: 'button', onclick: close }, 'Cancel'),
          h('button', { type: 'button', id: 'expiry-never', onclick: () => save('never') }, 'Never'), ok));
    });
  }

  // ---------- assets and remarks ----------

  async function directoryPage(page) {
    const body = h('div', null, h('div', { class: 'empty' }, 'Loading assets and remarks…'));
    page.append(h('div', { class: 'page-head' }, h('h1', null, 'Assets & remarks'),
      h('span', { class: 'sub' }, 'The organisation\'s own addresses, and notes on keys and IPs; every change is recorded and sealed')), body);
    try {
      const [assets, remarks] = await Promise.all([api('/api/v1/assets'), api('/api/v1/remarks')]);
      renderDirectory(page, body, assets || [], remarks || []);
    } catch (error) {
      if (error.status !== 401) clear(body).append(h('div', { class: 'error-box' }, error.message));
    }
  }

  function reloadDirectory(page, message) {
    if (message) toast(message);
    clear(page);
    directoryPage(page);
  }

  function renderDirectory(page, body, assets, remarks) {
    const formError = (id) => h('div', { class: 'error-box hidden', id });
    const fail = (box, failure) => { box.textContent = failure.message; box.classList.remove('hidden'); };
    const assetError = formError('asset-error');
    const assetForm = h('form', { class: 'inline-form', id: 'asset-form', onsubmit: async (event) => {
      event.preventDefault();
      try {
        const added = await api('/api/v1/assets', { method: 'POST', body: { cidr: assetForm.elements.cidr.value.trim(), name: assetForm.elements.name.value.trim() } });
        reloadDirectory(page, `Asset ${added.cidr} saved.`);
      } catch (failure) { fail(assetError, failure); }
    } },
    h('input', { name: 'cidr', id: 'asset-cidr', placeholder: 'IP or CIDR (10.0.0.0/8)', size: 22 }),
    h('input', { name: 'name', id: 'asset-name', placeholder: 'name (office, VPN egress…)', size: 24 }),
    h('button', { type: 'submit', class: 'primary', id: 'asset-add' }, 'Add asset'));
    const assetRows = assets.map((asset) => h('tr', { dataset: { cidr: asset.cidr } },
      h('td', { class: 'mono' }, asset.cidr), h('td', null, asset.name),
      h('td', null, asset.updated_by || '-'), h('td', { class: 'nowrap' }, asset.updated_at ? timeCell(asset.updated_at) : '-')));
    if (!assetRows.length) assetRows.push(h('tr', null, h('td', { colspan: 4, class: 'empty' }, 'No assets: every address counts as outside the organisation.')));
    const remarkError = formError('remark-error');
    const remarkForm = h('form', { class: 'inline-form', id: 'remark-form', onsubmit: async (event) => {
      event.preventDefault();
      const elements = remarkForm.elements;
      try {
        await api('/api/v1/remarks', { method: 'PUT', body: { kind: elements.kind.value, value: elements.value.value.trim(), remark: elements.remark.value.trim() } });
        reloadDirectory(page, 'Remark saved.');
      } catch (failure) { fail(remarkError, failure); }
    } },
    h('select', { name: 'kind', id: 'remark-kind' }, h('option', { value: 'ip' }, 'IP'), h('option', { value: 'key' }, 'Access key')),
    h('input', { name: 'value', id: 'remark-value', placeholder: 'the IP, or the key (full or as shown)', size: 30 }),
    h('input', { name: 'remark', id: 'remark-text', placeholder: 'remark (≤ 20 characters)', maxlength: 20, size: 22 }),
    h('button', { type: 'submit', class: 'primary', id: 'remark-add' }, 'Set remark'));
    const remarkRows = remarks.map((remark) => {
      const text = h('td', { class: 'remark-text' }, remark.remark);
      const edit = () => {
        const input = h('input', { class: 'remark-edit', value: remark.remark, maxlength: 20, size: 22 });
        const save = async () => {
          try {
            await api('/api/v1/remarks', { method: 'PUT', body: { kind: remark.kind, value: remark.value, remark: input.value.trim() } });
            reloadDirectory(page, 'Remark saved.');
          } catch (failure) { fail(remarkError, failure); }
        };
        input.addEventListener('keydown', (event) => {
          if (event.key === 'Enter') save();
          if (event.key === 'Escape') reloadDirectory(page);
        });
        clear(text).append(input, ' ', h('button', { type: 'button', class: 'small remark-save', onclick: save }, 'Save'));
        input.focus();
      };
      const remove = async () => {
        try {
          await api(`/api/v1/remarks?${new URLSearchParams({ kind: remark.kind, value: remark.value })}`, { method: 'DELETE' });
          reloadDirectory(page, 'Remark removed.');
        } catch (failure) { fail(remarkError, failure); }
      };
      return h('tr', { dataset: { kind: remark.kind, value: remark.value } },
        h('td', null, remark.kind === 'key' ? 'access key' : 'IP'), h('td', { class: 'mono' }, remark.value), text,
        h('td', null, remark.updated_by || '-'), h('td', { class: 'nowrap' }, remark.updated_at ? timeCell(remark.updated_at) : '-'),
        h('td', { class: 'nowrap' }, canAct() ? [h('button', { type: 'button', class: 'small remark-edit-button', onclick: edit }, 'Edit'), ' ',
          h('button', { type: 'button', class: 'small remark-remove', onclick: remove }, 'Remove')] : null));
    });
    if (!remarkRows.length) remarkRows.push(h('tr', null, h('td', { colspan: 6, class: 'empty' }, 'No remarks.')));
    clear(body).append(
      h('div', { class: 'panel' },
        h('div', { class: 'panel-head' }, h('h2', null, 'Assets'), h('span', { class: 'sub', id: 'asset-count' }, `${assets.length} address range${assets.length === 1 ? '' : 's'}: calls from them are "within the account"`)),
        canAct() ? [assetForm, assetError] : null,
        h('div', { class: 'table-wrap' }, h('table', { id: 'assets-table' },
          h('thead', null, h('tr', null, ['Range', 'Name', 'By', 'When'].map((label) => h('th', null, label)))),
          h('tbody', null, assetRows)))),
      h('div', { class: 'panel' },
        h('div', { class: 'panel-head' }, h('h2', null, 'Remarks'), h('span', { class: 'sub', id: 'remark-count' }, `${remarks.length} remark${remarks.length === 1 ? '' : 's'} on keys and IPs, shown beside them everywhere`)),
        canAct() ? [remarkForm, remarkError] : null,
        h('div', { class: 'table-wrap' }, h('table', { id: 'remarks-table' },
          h('thead', null, h('tr', null, ['Kind', 'Value', 'Remark', 'By', 'When', ''].map((label) => h('th', null, label)))),
          h('tbody', null, remarkRows)))));
  }

  /** Set a remark on a key or an IP from where it is shown (the alarm detail). */
  function editRemark(kind, value, current, done) {
    modal((dialog, close) => {
      dialog.id = 'edit-remark';
      const error = h('div', { class: 'error-box hidden' });
      const input = h('input', { id: 'edit-remark-text', value: current || '', maxlength: 20, size: 24, placeholder: '≤ 20 characters' });
      const ok = h('button', { type: 'button', class: 'primary', id: 'edit-remark-ok', onclick: async () => {
        ok.disabled = true;
        try {
          const text = input.value.trim();
          if (text) await api('/api/v1/remarks', { method: 'PUT', body: { kind, value, remark: text } });
          else await api(`/api/v1/remarks?${new URLSearchParams({ kind, value })}`, { method: 'DELETE' });
          close();
          toast(text ? 'Remark saved.' : 'Remark removed.');
          done();
        } catch (failure) {
          ok.disabled = false;
          error.textContent = failure.message;
          error.classList.remove('hidden');
        }
      } }, 'Save');
      dialog.append(h('h2', null, `Remark on ${kind === 'key' ? 'access key' : 'IP'} ${value}`),
        h('p', { class: 'muted' }, 'Shown beside it in alarms, call records and the god view; empty removes it. Recorded with your token\'s name.'),
        input, error, h('div', { class: 'dialog-actions' }, h('button', { type: 'button', onclick: close }, 'Cancel'), ok));
      input.focus();
    });
  }

  function confirmRemovePolicy(page, policy) {
    modal((dialog, close) => {
      dialog.id = 'confirm-remove';
      const error = h('div', { class: 'error-box hidden' });
      const ok = h('button', { type: 'button', class: 'primary', id: 'confirm-remove-ok', onclick: async () => {
        ok.disabled = true;
        try {
          await api(`/api/v1/allowlist/${policy.id}`, { method: 'DELETE' });
          close();
          toast(`Allowlist policy #${policy.id} removed.`);
          clear(page);
          allowlistPage(page);
        } catch (failure) {
          ok.disabled = false;
          error.textContent = failure.message;
          error.classList.remove('hidden');
        }
      } }, 'Remove policy');
      dialog.append(h('h2', null, `Remove allowlist policy #${policy.id}?`),
        h('p', { class: 'muted' }, 'Its matches raise alarms again. The removal is recorded with your token\'s name.'),
        error,
        h('div', { class: 'dialog-actions' }, h('button', { type: 'button', onclick: close }, 'Cancel'), ok));
    });
  }

  // ---------- rules page ----------

  async function rulesPage(page) {
    const body = h('div', null, h('div', { class: 'empty' }, 'Loading rules…'));
    page.append(h('div', { class: 'page-head' }, h('h1', null, 'Rules'), h('span', { class: 'sub', id: 'rules-count' })), body);
    try {
      state.rules = null;
      const data = await loadRules();
      renderRules(page, body, data);
    } catch (error) {
      if (error.status !== 401) clear(body).append(h('div', { class: 'error-box' }, error.message));
    }
  }

  function renderRules(page, body, data) {
    const rules = data.rules || [];
    const reload = data.reload || {};
    const enabled = rules.filter((rule) => rule.enabled).length;
    page.querySelector('#rules-count').textContent = `${rules.length} rules, ${enabled} enabled`;
    const filter = h('input', { type: 'search', id: 'rules-filter', placeholder: 'Filter by id, title or tag' });
    const tbody = h('tbody');
    const draw = () => {
      const needle = filter.value.trim().toLowerCase();
      const shown = rules.filter((rule) => !needle || [rule.id, rule.title, ...(rule.tags || [])].join(' ').toLowerCase().includes(needle));
      shown.sort((a, b) => (LEVEL_RANK[b.level] || 0) - (LEVEL_RANK[a.level] || 0) || a.id.localeCompare(b.id));
      clear(tbody).append(...shown.map((rule) => {
        const tests = rule.tests || {};
        const failed = Number(tests.failed) || 0;
        const passed = Number(tests.passed) || 0;
        return h('tr', { dataset: { id: rule.id } },
          h('td', null, h('span', { class: `chip ${rule.enabled ? 'on' : 'off'}` }, rule.enabled ? 'enabled' : 'disabled')),
          h('td', { class: 'title-cell' }, h('div', { class: 'title' }, rule.title), h('div', { class: 'rule' }, rule.id),
            rule.sigma ? h('div', { class: 'line2 sigma' }, sigmaLabel(rule.sigma)) : null,
            rule.description ? h('div', { class: 'line2' }, richText(rule.description)) : null),
          h('td', null, levelBadge(rule.level)),
          h('td', null, (rule.clouds || []).map((cloud) => providerChip(cloud))),
          h('td', null, (rule.tags || []).map((tag) => h('span', { class: 'chip' }, tag))),
          h('td', { class: 'nowrap' }, failed ? h('span', { class: 'fail' }, `${failed} failed`) : null, failed ? ' · ' : null,
            h('span', { class: passed ? 'ok' : 'zero' }, `${passed} passed`)),
          h('td', null, h('a', { href: `#/alarms?rule=${encodeURIComponent(rule.id)}` }, 'Alarms')));
      }));
      if (!shown.length) tbody.append(h('tr', null, h('td', { colspan: 7, class: 'empty' }, 'No rule matches the filter.')));
    };
    filter.addEventListener('input', debounce(draw, 150));
    draw();
    clear(body).append(reloadPanel(page, body, reload),
      h('div', { class: 'panel' },
        h('div', { class: 'panel-head' }, h('h2', null, 'Rule set'), h('span', { class: 'spacer' }), filter),
        h('div', { class: 'table-wrap' }, h('table', { id: 'rules-table' },
          h('thead', null, h('tr', null, h('th', null, 'State'), h('th', null, 'Rule'), h('th', null, 'Level'), h('th', null, 'Clouds'), h('th', null, 'Tags'),
            h('th', null, 'Embedded tests'), h('th', null, ''))),
          tbody))));
  }

  /** "Sigma correlation (event_count) · aws/cloudtrail · status test · cross-cloud". */
  function sigmaLabel(sigma) {
    const parts = [sigma.correlation ? `Sigma correlation (${sigma.correlation})` : 'Sigma rule'];
    if (sigma.logsource) parts.push(sigma.logsource);
    if (sigma.status) parts.push(`status ${sigma.status}`);
    if (sigma.cross_cloud) parts.push('cross-cloud');
    return parts.join(' · ');
  }

  function reloadPanel(page, body, reload) {
    const stat = (label, value, id) => h('span', { class: 'stat', id }, h('span', { class: 'label' }, label), value);
    const lastError = reload.last_error || reload.error || null;
    const when = reload.last_attempt || reload.last_reload || reload.at || null;
    const button = isAdmin() ? h('button', {
      type: 'button', class: 'primary', id: 'rules-reload',
      onclick: async () => {
        button.disabled = true;
        try {
          const result = await api('/api/v1/rules/reload', { method: 'POST' });
          const failed = result && (result.error || result.last_error);
          toast(failed ? `Reload failed: ${failed}` : 'Rules reloaded.', failed ? 'error' : null);
        } catch (error) {
          toast(`Reload failed: ${error.message}`, 'error');
        }
        state.rules = null;
        clear(page);
        rulesPage(page);
      },
    }, '↻ Reload rules') : null;
    return h('div', { class: 'panel', id: 'reload-status' },
      h('div', { class: 'panel-head' }, h('h2', null, 'Last reload'), h('span', { class: 'spacer' }), button),
      h('div', { class: 'panel-body reload-line' },
        stat('Result', lastError ? h('span', { class: 'fail' }, 'failed — running rule set kept') : h('span', { class: 'ok' }, 'ok')),
        reload.version !== undefined && reload.version !== null ? stat('Rule set', h('span', { class: 'mono' }, String(reload.version))) : null,
        reload.rules !== undefined ? stat('Rules loaded', fmtInt(reload.rules)) : null,
        reload.attempts !== undefined ? stat('Reload attempts', fmtInt(reload.attempts)) : null,
        reload.reloads !== undefined ? stat('Reloads applied', fmtInt(reload.reloads)) : null,
        reload.failures !== undefined ? stat('Failed', h('span', { class: reload.failures ? 'fail' : null }, fmtInt(reload.failures))) : null,
        stat('Last attempt', when ? timeCell(when, true) : 'none since start'),
        lastError ? h('div', { class: 'error-box', id: 'reload-error' }, String(lastError)) : null));
  }

  // ---------- events (the event store) ----------

  const EVENT_FILTERS = [['key', 'Access key'], ['principal', 'Principal'], ['ip', 'IP or network'], ['account', 'Account'],
    ['action', 'Action'], ['service', 'Service'], ['resource', 'Resource'], ['id', 'Event / request id'], ['alarm', 'Alarm #', 6]];

  /** Tabs of the Events page: every event (the event store) or the key-operation traces. */
  function eventTabs(active) {
    const tab = (view, label) => h('a', { href: view ? `#/events?view=${view}` : '#/events', class: `tab${active === view ? ' active' : ''}`, id: `events-tab-${view || 'all'}` }, label);
    return h('div', { class: 'tabs' }, tab('', 'All events'), tab('traces', 'Key operations (SEC09-03 traces)'));
  }

  /**
   * A filter form for the Events page: text inputs, selects and a time range
   * (`prefix` names their ids); submitting puts the filled fields in the URL
   * hash (times as ISO), beside `base`.
   */
  function filterForm(prefix, params, base, texts, selects) {
    const form = h('form', { class: 'event-filters', id: `${prefix}-form`, onsubmit: (event) => {
      event.preventDefault();
      const next = new URLSearchParams(base);
      for (const element of form.elements) {
        if (element.name && element.value) next.set(element.name, element.name === 'since' || element.name === 'until' ? localToIso(element.value) : element.value);
      }
      go('/events', next);
    } },
    texts.map(([name, label, size]) => h('label', null, h('span', { class: 'faint' }, label),
      h('input', { name, id: `${prefix}-${name}`, value: params.get(name) || '', size: size || 18 }))),
    selects.map(([name, label, options]) => h('label', null, h('span', { class: 'faint' }, label), h('select', { name, id: `${prefix}-${name}` },
      options.map(([value, text]) => h('option', { value }, text))))),
    ['since', 'until'].map((name) => h('label', null, h('span', { class: 'faint' }, name === 'since' ? 'From' : 'To'),
      h('input', { type: 'datetime-local', name, id: `${prefix}-${name}`, value: isoToLocal(params.get(name) || '') }))),
    h('button', { type: 'submit', class: 'primary', id: `${prefix}-search` }, 'Search'));
    for (const [name] of selects) form.elements[name].value = params.get(name) || '';
    return form;
  }

  /** The Events page around a filter form and a results table. */
  function searchShell(page, { sub, tab, form, heading, status, tableId, columns, tbody, footer }) {
    page.append(h('div', { class: 'page-head' }, h('h1', null, 'Events'), h('span', { class: 'sub' }, sub)),
      eventTabs(tab),
      h('div', { class: 'panel' }, form),
      h('div', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', null, heading), status),
        h('div', { class: 'table-wrap' }, h('table', { id: tableId },
          h('thead', null, h('tr', null, columns.map((label) => h('th', null, label)))), tbody)),
        footer || null));
  }

  const ANY_OUTCOME = [['', 'any'], ['success', 'success'], ['failure', 'failure']];

  async function eventsPage(page, params) {
    params = params || parseHash().params;
    if (params.get('view') === 'traces') return tracesPage(page, params);
    const form = filterForm('ev', params, {}, EVENT_FILTERS,
      [['outcome', 'Outcome', ANY_OUTCOME], ['cloud', 'Cloud', [['', 'any'], ['aws', 'AWS'], ['huawei', 'Huawei'], ['tencent', 'Tencent']]]]);
    const tbody = h('tbody', { id: 'events-rows' });
    const status = h('span', { class: 'sub', id: 'events-status' }, 'Searching…');
    const more = h('button', { type: 'button', id: 'events-more', class: 'hidden' }, 'Older events');
    searchShell(page, {
      sub: 'Every event kept by the event store, newest first, with its record', tab: '', form, heading: 'Results', status,
      tableId: 'events-table', columns: ['Time', 'Cloud', 'Account', 'Principal', 'Key', 'Source IP', 'Action', 'Result', 'Request id'],
      tbody, footer: h('div', { class: 'pager' }, more),
    });
    const query = new URLSearchParams();
    for (const [name, value] of params) if (value) query.set(name, value);
    query.set('limit', '50');
    let shown = 0;
    const load = async (cursor) => {
      if (cursor) query.set('cursor', cursor);
      more.classList.add('hidden');
      try {
        const data = await api(`/api/v1/events?${query}`);
        for (const event of data.events || []) {
          shown += 1;
          tbody.append(...eventRow(event));
        }
        if (!shown) tbody.append(h('tr', null, h('td', { colspan: 9, class: 'empty' }, 'No events match.')));
        status.textContent = `${fmtInt(shown)} event${shown === 1 ? '' : 's'}${data.next ? ', more older' : ''} · ${fmtInt(data.blocks_opened)} of ${fmtInt(data.blocks_checked)} blocks read`;
        if (data.next) {
          more.classList.remove('hidden');
          more.onclick = () => load(data.next);
        }
      } catch (error) {
        if (error.status !== 401) status.replaceWith(h('div', { class: 'error-box', id: 'events-error' }, error.message));
      }
    };
    load(null);
  }

  const TRACE_FILTERS = [['operator', 'Operator or principal id'], ['service', 'Service'], ['resource_type', 'Resource type'],
    ['call_method', 'Method or trace type']];

  async function tracesPage(page, params) {
    const form = filterForm('tr', params, { view: 'traces' }, TRACE_FILTERS, [['status', 'Status', ANY_OUTCOME]]);
    const tbody = h('tbody', { id: 'traces-rows' });
    const status = h('span', { class: 'sub', id: 'traces-status' }, 'Searching…');
    searchShell(page, {
      sub: 'Key operations (the SEC09-03 rules\' operations), kept whole for traces.retention', tab: 'traces', form, heading: 'Traces', status,
      tableId: 'traces-table', columns: ['Time', 'Cloud', 'Operator', 'Method', 'Trace type', 'Action', 'Resource type', 'Status', 'Source IP'],
      tbody,
    });
    const query = new URLSearchParams({ limit: '200' });
    for (const [name, value] of params) if (value && name !== 'view') query.set(name, value);
    try {
      const traces = (await api(`/api/v1/traces?${query}`)) || [];
      for (const trace of traces) {
        const detail = h('tr', { class: 'event-raw hidden' }, h('td', { colspan: 9 }, h('pre', null, JSON.stringify(trace.raw, null, 2))));
        const failed = trace.status === 'failure';
        tbody.append(h('tr', { class: 'trace-row', title: 'Show the record', onclick: () => detail.classList.toggle('hidden') },
          h('td', { class: 'nowrap' }, timeCell(trace.time)),
          h('td', null, providerChip(trace.provider)),
          h('td', null, trace.operator),
          h('td', null, trace.call_method),
          h('td', null, trace.trace_type || '-'),
          h('td', null, h('span', { class: 'mono' }, trace.action), h('span', { class: 'muted' }, ` · ${trace.service}`)),
          h('td', null, trace.resource_type || '-'),
          h('td', { class: failed ? 'fail' : 'ok' }, failed ? (trace.error_code || 'failure') : 'success'),
          h('td', { class: 'mono' }, trace.source_ip || '-')), detail);
      }
      if (!traces.length) tbody.append(h('tr', null, h('td', { colspan: 9, class: 'empty' }, 'No key operations match.')));
      status.textContent = `${fmtInt(traces.length)} trace${traces.length === 1 ? '' : 's'}${traces.length === 200 ? ' (the newest 200)' : ''}`;
    } catch (error) {
      if (error.status !== 401) status.replaceWith(h('div', { class: 'error-box', id: 'traces-error' }, error.message));
    }
  }

  function eventRow(event) {
    const failed = event.outcome === 'failure';
    const detail = h('tr', { class: 'event-raw hidden' }, h('td', { colspan: 9 }, h('pre', null, JSON.stringify(event.raw, null, 2))));
    const row = h('tr', { class: 'event-row', dataset: { position: event.position }, title: 'Show the record', onclick: () => detail.classList.toggle('hidden') },
      h('td', { class: 'nowrap' }, timeCell(event.time)),
      h('td', null, providerChip(event.provider)),
      h('td', { class: 'mono' }, event.account_id || '-'),
      h('td', null, event.principal_name || event.principal_id || event.principal_kind),
      h('td', { class: 'mono' }, event.access_key_id || '-'),
      h('td', { class: 'mono' }, event.source_ip || '-'),
      h('td', null, h('span', { class: 'mono' }, event.action), h('span', { class: 'muted' }, ` · ${event.service}`)),
      h('td', { class: failed ? 'fail' : 'ok' }, failed ? (event.error_code || 'failure') : 'success'),
      h('td', { class: 'mono faint' }, event.request_id || event.event_id));
    return [row, detail];
  }

  // ---------- god view ----------

  const RANGES = [['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['30d', 'Last 30 days'], ['', 'All time']];

  async function activityPage(page, params) {
    params = params || parseHash().params;
    const since = params.get('since') || '';
    const range = h('select', { id: 'act-range', onchange: (event) => go('/activity', new URLSearchParams(event.target.value ? { since: event.target.value } : {})) },
      RANGES.map(([value, label]) => h('option', { value }, label)));
    if (since && !RANGES.some(([value]) => value === since)) range.append(h('option', { value: since }, `Since ${since}`));
    range.value = since;
    const body = h('div', null, h('div', { class: 'empty' }, 'Loading activity…'));
    page.append(h('div', { class: 'page-head' }, h('h1', null, 'God view'),
      h('span', { class: 'sub' }, 'Every event of every account, from hourly rollups'), h('span', { class: 'spacer' }), range), body);
    const query = new URLSearchParams({ top: '10' });
    if (since) query.set('since', since);
    if (params.get('until')) query.set('until', params.get('until'));
    try {
      const data = await api(`/api/v1/activity?${query}`);
      renderActivity(body, data);
    } catch (error) {
      if (error.status !== 401) clear(body).append(h('div', { class: 'error-box' }, error.message));
    }
  }

  function card(label, value, bad) {
    return h('div', { class: 'panel card' }, h('div', { class: 'label' }, label), h('div', { class: `value${bad ? ' bad' : ''}` }, value));
  }

  function meter(value, max, red) {
    const bar = h('span');
    bar.style.width = `${max ? Math.max(2, Math.round((value / max) * 100)) : 0}%`;
    return h('div', { class: `meter${red ? ' red' : ''}` }, bar);
  }

  function renderActivity(body, data) {
    const events = Number(data.events) || 0;
    const failures = Number(data.failures) || 0;
    const hourly = hourlySeries(data);
    const principals = data.busiest_principals || [];
    const ips = data.busiest_source_ips || [];
    const apis = data.busiest_apis || [];
    const rates = data.failure_rates || [];
    const pairs = data.new_key_ips || [];
    const maxOf = (rows) => rows.reduce((m, row) => Math.max(m, Number(row.events) || 0), 0);

    const topTable = (id, title, head, rows, cells) => h('div', { class: 'panel', id },
      h('div', { class: 'panel-head' }, h('h2', null, title)),
      rows.length
        ? h('table', { class: 'compact' }, h('thead', null, h('tr', null, head.map((label) => h('th', { class: ['Events', 'Failures', 'Rate', 'Principals'].includes(label) ? 'num' : null }, label)))),
          h('tbody', null, rows.map((row) => h('tr', null, cells(row)))))
        : h('div', { class: 'empty' }, 'Nothing in this range.'));

    const maxP = maxOf(principals);
    const maxI = maxOf(ips);
    const maxA = maxOf(apis);
    clear(body).append(
      h('div', { class: 'cards' },
        card('Events', fmtInt(events)),
        card('Failed calls', fmtInt(failures), failures > 0),
        card('Failure rate', pct(events ? failures / events : 0)),
        card('New key / IP pairs', fmtInt(data.new_key_ips_total !== undefined ? data.new_key_ips_total : pairs.length))),
      h('div', { class: 'panel', id: 'activity-chart' },
        h('div', { class: 'panel-head' }, h('h2', null, 'Events per hour'), h('span', { class: 'spacer' }),
          h('span', { class: 'legend' }, h('span', null, h('span', { class: 'swatch events' }), 'events'), h('span', null, h('span', { class: 'swatch failures' }), 'failures'))),
        h('div', { class: 'panel-body' }, hourly.length ? hourlyChart(hourly) : h('div', { class: 'empty' }, 'No hourly series in this range.'))),
      h('div', { class: 'tops' },
        topTable('top-principals', 'Busiest principals', ['Principal', 'Account', 'Events', '', 'Failures'], principals, (row) => [
          h('td', null, row.principal || '-'),
          h('td', null, providerChip(row.provider), ' ', h('span', { class: 'mono' }, row.account_id || '-')),
          h('td', { class: 'num' }, fmtInt(row.events)), h('td', null, meter(row.events, maxP)),
          h('td', { class: 'num' }, h('span', { class: row.failures ? 'fail' : 'zero' }, fmtInt(row.failures)))]),
        topTable('top-ips', 'Busiest source IPs', ['Source IP', 'Region', 'Principals', 'Events', '', 'Failures'], ips, (row) => [
          h('td', null, h('span', { class: 'key' }, row.source_ip, copyButton(row.source_ip, 'IP address'))),
          h('td', { class: 'muted' }, row.region || 'region unknown'),
          h('td', { class: 'num' }, fmtInt(row.principals)),
          h('td', { class: 'num' }, fmtInt(row.events)), h('td', null, meter(row.events, maxI)),
          h('td', { class: 'num' }, h('span', { class: row.failures ? 'fail' : 'zero' }, fmtInt(row.failures)))]),
        topTable('top-apis', 'Busiest APIs', ['API', 'Principals', 'Events', '', 'Failures'], apis, (row) => [
          h('td', null, providerChip(row.provider), ' ', h('span', { class: 'mono' }, `${row.service}.${row.action}`)),
          h('td', { class: 'num' }, fmtInt(row.principals)),
          h('td', { class: 'num' }, fmtInt(row.events)), h('td', null, meter(row.events, maxA)),
          h('td', { class: 'num' }, h('span', { class: row.failures ? 'fail' : 'zero' }, fmtInt(row.failures)))]),
        topTable('top-failures', 'Failures by account', ['Account', 'Events', 'Failures', 'Rate', ''], rates, (row) => [
          h('td', null, providerChip(row.provider), ' ', h('span', { class: 'mono' }, row.account_id || '-')),
          h('td', { class: 'num' }, fmtInt(row.events)),
          h('td', { class: 'num' }, h('span', { class: row.failures ? 'fail' : 'zero' }, fmtInt(row.failures))),
          h('td', { class: 'num' }, pct(row.failure_rate)), h('td', null, meter(row.failure_rate || 0, 1, true))]),
        topTable('top-pairs', 'Access key / IP pairs first seen', ['Access key', 'Source IP', 'Principal', 'First seen'], pairs, (row) => [
          h('td', null, h('span', { class: 'key' }, row.access_key_id || '-')),
          h('td', { class: 'mono' }, row.source_ip || '-'),
          h('td', null, row.principal || '-', h('div', { class: 'line2' }, providerChip(row.provider), ' ', row.account_id || '')),
          h('td', null, timeCell(row.first_seen))])));
  }

  /** `[{t: ms, events, failures}]` from whichever shape the API gives the hourly series in. */
  function hourlySeries(data) {
    const raw = data.hourly || data.hours || data.series || [];
    return raw.map((row) => {
      const when = row.hour !== undefined ? row.hour : (row.hour_start !== undefined ? row.hour_start : (row.time !== undefined ? row.time : row.hour_ms));
      const t = typeof when === 'number' ? when : new Date(when).getTime();
      return { t, events: Number(row.events !== undefined ? row.events : row.count) || 0, failures: Number(row.failures) || 0 };
    }).filter((row) => !Number.isNaN(row.t)).sort((a, b) => a.t - b.t);
  }

  function hourlyChart(series) {
    const HOUR = 3600 * 1000;
    // Fill the gaps so quiet hours show as quiet, up to a sane number of bars.
    const start = series[0].t;
    const end = series[series.length - 1].t;
    let rows = series;
    if ((end - start) / HOUR <= 24 * 62) {
      const byHour = new Map(series.map((row) => [row.t, row]));
      rows = [];
      for (let t = start; t <= end; t += HOUR) rows.push(byHour.get(t) || { t, events: 0, failures: 0 });
    }
    const width = 1200;
    const height = 220;
    const left = 48;
    const bottom = 24;
    const top = 10;
    const plotW = width - left - 8;
    const plotH = height - top - bottom;
    const max = Math.max(1, ...rows.map((row) => row.events));
    const niceMax = niceCeil(max);
    const step = plotW / rows.length;
    const barW = Math.max(1, step - (step > 4 ? 1 : 0));
    const y = (v) => top + plotH - (v / niceMax) * plotH;
    const chart = svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': 'Events per hour' });
    for (let i = 0; i <= 4; i += 1) {
      const v = (niceMax / 4) * i;
      chart.append(svg('line', { class: 'grid', x1: left, x2: width - 8, y1: y(v), y2: y(v) }),
        svg('text', { x: left - 6, y: y(v) + 3, 'text-anchor': 'end' }, fmtInt(Math.round(v))));
    }
    rows.forEach((row, index) => {
      const x = left + index * step;
      const label = `${utcTime(new Date(row.t).toISOString()).slice(0, 13)}:00 UTC — ${fmtInt(row.events)} events, ${fmtInt(row.failures)} failures`;
      if (row.events) {
        chart.append(svg('rect', { class: 'bar', x, y: y(row.events), width: barW, height: y(0) - y(row.events) }, svg('title', null, label)));
      }
      if (row.failures) {
        chart.append(svg('rect', { class: 'bar-fail', x, y: y(row.failures), width: barW, height: y(0) - y(row.failures) }, svg('title', null, label)));
      }
    });
    chart.append(svg('line', { class: 'axis', x1: left, x2: width - 8, y1: y(0), y2: y(0) }));
    // Day ticks (or every few hours on short ranges).
    const hours = rows.length;
    const tickEvery = hours <= 48 ? 6 : hours <= 24 * 8 ? 24 : 24 * Math.ceil(hours / (24 * 10));
    rows.forEach((row, index) => {
      const date = new Date(row.t);
      if (date.getUTCHours() % Math.min(tickEvery, 24) !== 0 || (tickEvery > 24 && Math.floor(row.t / HOUR / 24) % (tickEvery / 24) !== 0)) return;
      const x = left + index * step;
      const text = tickEvery >= 24 ? `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}` : `${pad(date.getUTCDate())} ${pad(date.getUTCHours())}:00`;
      chart.append(svg('line', { class: 'axis', x1: x, x2: x, y1: y(0), y2: y(0) + 4 }), svg('text', { x: x + 2, y: height - 6 }, text));
    });
    return chart;
  }

  function niceCeil(value) {
    const exp = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * exp >= value) return m * exp;
    return 10 * exp;
  }

  render();
})();
