/* Longhaul dashboard — plain JavaScript, no build step, no dependencies.
 *
 * Served by lh-gateway from the copy embedded at build time (gateway/dashboard/embed.py) under a
 * strict Content-Security-Policy: no inline script or style, no eval, requests to this origin
 * only. Every API call carries the bearer token in the Authorization header; the token lives in
 * this tab's sessionStorage and never in a URL. The plan's live events come from
 * GET /v1/plans/{id}/events read with fetch() as a stream (EventSource cannot send headers), with
 * Last-Event-ID on reconnect. Everything shown is built with DOM calls and textContent: nothing
 * from the server is ever parsed as HTML. */
'use strict';

(function () {
  const TOKEN_KEY = 'longhaul.token';
  const SVGNS = 'http://www.w3.org/2000/svg';
  const TERMINAL = ['completed', 'failed', 'cancelled'];
  const INT_DIMS = ['tokens', 'tasks', 'replans', 'deadline_s', 'attempts_per_task'];
  /* one random nonce per page: an action's idempotency key is the same on a double click */
  const NONCE = hex(new Uint8Array(8));

  const $ = (id) => document.getElementById(id);
  let view = null; /* the current page: {stop()} */
  let pendingTimer = null;

  function hex(bytes) {
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  /* h('div', {class: 'x', 'data-a': 1}, child, 'text', ...) — DOM only, text via textContent */
  function h(tag, attrs, ...kids) {
    const svg = ['svg', 'g', 'rect', 'path', 'text', 'title', 'line', 'circle', 'polyline',
      'polygon', 'tspan'].includes(tag);
    const el = svg ? document.createElementNS(SVGNS, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of kids.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function toast(msg, err) {
    const t = $('toast');
    t.textContent = msg;
    t.className = 'show' + (err ? ' err' : '');
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.className = ''; }, err ? 8000 : 3000);
  }

  /* ---- the API ------------------------------------------------------------------------ */

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  function headers(extra) {
    const hd = Object.assign({ Accept: 'application/json' }, extra || {});
    const t = token();
    if (t) hd.Authorization = 'Bearer ' + t;
    return hd;
  }

  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  async function api(method, path, body, key) {
    const init = { method, headers: headers(), cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.headers['Idempotency-Key'] = key || ('dash-' + hex(new Uint8Array(12)));
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    const text = await r.text();
    let j = null;
    try { j = text ? JSON.parse(text) : null; } catch (e) { j = null; }
    if (!r.ok) {
      const e = j && j.error ? j.error : { code: 'http_' + r.status, message: 'HTTP ' + r.status };
      if (r.status === 401) signOut('the gateway refused the token: ' + e.message);
      throw new ApiError(r.status, e.code, e.message);
    }
    return j;
  }

  /* Read a plan's server-sent events with fetch (bearer header), resuming after the last id.
   * onEvent({id, type, data}); returns when the stream ends for good (plan finished) or stop()
   * was called. */
  function streamEvents(plan, onEvent, onState) {
    const ctl = new AbortController();
    let last = null;
    let stopped = false;
    (async () => {
      let backoff = 500;
      while (!stopped) {
        let finished = false;
        try {
          const hd = headers({ Accept: 'text/event-stream' });
          if (last !== null) hd['Last-Event-ID'] = String(last);
          const r = await fetch('/v1/plans/' + encodeURIComponent(plan) + '/events',
            { headers: hd, signal: ctl.signal, cache: 'no-store', credentials: 'omit' });
          if (r.status === 401) { signOut('the gateway refused the token'); return; }
          if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
          onState('live');
          backoff = 500;
          const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value.replace(/\r\n?/g, '\n');
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              const ev = parseBlock(buf.slice(0, i));
              buf = buf.slice(i + 2);
              if (!ev) continue;
              if (ev.id !== null) last = ev.id;
              if (TERMINAL.includes((ev.type || '').replace('plan.', ''))) finished = true;
              onEvent(ev);
            }
          }
          if (finished) { onState('finished'); return; }
        } catch (e) {
          if (stopped) return;
        }
        onState('reconnecting');
        /* reconnect pacing (not synchronization): the server may be restarting */
        await new Promise((res) => setTimeout(res, backoff));
        backoff = Math.min(backoff * 2, 10000);
      }
    })();
    return { stop() { stopped = true; ctl.abort(); } };
  }

  function parseBlock(block) {
    let id = null, type = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (!line || line[0] === ':') continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      let val = c < 0 ? '' : line.slice(c + 1);
      if (val[0] === ' ') val = val.slice(1);
      if (field === 'id') id = val;
      else if (field === 'event') type = val;
      else if (field === 'data') data.push(val);
    }
    if (!data.length) return null;
    let parsed = null;
    try { parsed = JSON.parse(data.join('\n')); } catch (e) { parsed = data.join('\n'); }
    return { id, type, data: parsed };
  }

  /* ---- formatting ----------------------------------------------------------------------- */

  const fmtUsd = (v) => '$' + Number(v || 0).toFixed(Number(v || 0) < 1 ? 4 : 2);
  const fmtInt = (v) => Number(v || 0).toLocaleString('en-US');
  const fmtTime = (s) => (s ? new Date(s).toLocaleString() : '');
  const short = (id) => String(id).slice(0, 8) + '…';
  const badge = (status) => h('span', { class: 'badge st-' + status, 'data-status': status }, status);

  function progress(done, total) {
    const pct = total > 0 ? Math.round((100 * done) / total) : 0;
    const bar = h('span', { class: 'progress', title: done + ' of ' + total + ' tasks' }, h('span'));
    bar.firstChild.style.width = pct + '%'; /* CSSOM, allowed by the CSP (no inline style text) */
    return h('span', { class: 'prog' }, bar, h('span', { class: 'muted' }, done + '/' + total));
  }

  function setConn(text) { $('conn').textContent = text; }

  /* ---- pages ----------------------------------------------------------------------------- */

  function route() {
    if (view) view.stop();
    view = null;
    const main = $('view');
    main.replaceChildren();
    if (token() === null) { showLogin(); return; }
    $('login').hidden = true;
    $('logout').hidden = false;
    const hash = location.hash || '#/';
    const m = hash.match(/^#\/plans\/([0-9a-fA-F-]{36})$/);
    if (m) view = planPage(main, m[1].toLowerCase());
    else if (hash === '#/requests') view = requestsPage(main);
    else view = plansPage(main);
    refreshPendingCount();
  }

  function showLogin(msg) {
    $('view').replaceChildren();
    $('login').hidden = false;
    $('logout').hidden = true;
    $('login-error').textContent = msg || '';
    $('token').focus();
  }

  function signOut(msg) {
    sessionStorage.removeItem(TOKEN_KEY);
    if (view) view.stop();
    view = null;
    showLogin(msg);
  }

  /* A page that polls: load() now and every ms until stopped. */
  function poller(load, ms) {
    let timer = null, stopped = false;
    const tick = async () => {
      try { await load(); } catch (e) { if (e.status !== 401) setConn('error: ' + e.message); }
      if (!stopped) timer = setTimeout(tick, ms);
    };
    tick();
    return { stop() { stopped = true; clearTimeout(timer); } };
  }

  function plansPage(main) {
    const tbody = h('tbody', { id: 'plans-body' });
    const chart = h('div', { id: 'plans-cost' });
    main.append(h('h1', {}, 'Plans'),
      h('table', { id: 'plans' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Plan'), h('th', {}, 'Goal'), h('th', {}, 'Status'),
          h('th', {}, 'Progress'), h('th', { class: 'num' }, 'Tokens'),
          h('th', { class: 'num' }, 'Cost'), h('th', {}, 'Created'))),
        tbody),
      h('h2', {}, 'Cost over time (plans shown, by creation)'), chart);
    return poller(async () => {
      const plans = await api('GET', '/v1/plans?limit=100');
      tbody.replaceChildren(...plans.map((p) => h('tr', { 'data-plan': p.plan_id },
        h('td', {}, h('a', { href: '#/plans/' + p.plan_id }, short(p.plan_id))),
        h('td', {}, p.goal),
        h('td', {}, badge(p.status)),
        h('td', {}, progress(p.tasks_succeeded, p.tasks_total)),
        h('td', { class: 'num' }, fmtInt(p.input_tokens + p.output_tokens)),
        h('td', { class: 'num' }, fmtUsd(p.cost_usd)),
        h('td', {}, fmtTime(p.created_at)))));
      if (!plans.length)
        tbody.append(h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No plans yet.')));
      const pts = plans.slice().reverse().map((p) => [Date.parse(p.created_at), Number(p.cost_usd || 0)]);
      chart.replaceChildren(costChart(pts, 'cost-chart-plans'));
      setConn('updated ' + new Date().toLocaleTimeString());
    }, 5000);
  }

  function requestsPage(main) {
    const list = h('div', { id: 'requests' });
    main.append(h('h1', {}, 'Pending approvals and questions'), list);
    return poller(async () => {
      const reqs = await api('GET', '/v1/requests?status=pending&limit=1000');
      renderRequests(list, reqs, true, () => {});
      setPendingCount(reqs.length);
      setConn('updated ' + new Date().toLocaleTimeString());
    }, 4000);
  }

  async function refreshPendingCount() {
    clearTimeout(pendingTimer);
    try {
      setPendingCount((await api('GET', '/v1/requests?status=pending&limit=1000')).length);
    } catch (e) { /* shown by the page itself */ }
    if (token() !== null) pendingTimer = setTimeout(refreshPendingCount, 10000);
  }

  function setPendingCount(n) {
    const c = $('pending-count');
    c.textContent = String(n);
    c.className = 'count' + (n ? ' has' : '');
  }

  /* Cards for requests, with approve / reject or answer. */
  function renderRequests(box, reqs, withPlan, after) {
    if (!reqs.length) {
      box.replaceChildren(h('p', { class: 'muted' }, 'Nothing is waiting for an answer.'));
      return;
    }
    /* keep cards the user is typing in */
    const keep = new Map();
    for (const el of box.querySelectorAll('.request')) keep.set(el.dataset.key, el);
    const cards = reqs.map((r) => {
      const key = r.plan_id + '/' + r.request_id;
      const old = keep.get(key);
      /* a card whose answer was sent stays until the request is no longer pending */
      if (old && (old.dataset.status === r.status || old.dataset.status === 'sent')) return old;
      return requestCard(r, withPlan, after);
    });
    box.replaceChildren(...cards);
  }

  function requestCard(r, withPlan, after) {
    const key = r.plan_id + '/' + r.request_id;
    const path = '/v1/requests/' + encodeURIComponent(r.plan_id) + '/' +
      encodeURIComponent(r.request_id);
    const card = h('div', { class: 'card request', 'data-key': key, 'data-kind': r.kind,
      'data-status': r.status, 'data-request': r.request_id },
    h('div', { class: 'row' }, h('strong', {}, r.kind === 'question' ? 'Question' : 'Approval: ' + r.kind),
      badge(r.status),
      withPlan ? h('a', { href: '#/plans/' + r.plan_id }, 'plan ' + short(r.plan_id)) : null,
      r.task_no !== null && r.task_no !== undefined ? h('span', { class: 'muted' }, 'task ' + r.task_no) : null,
      h('span', { class: 'muted' }, fmtTime(r.created_at))),
    h('p', {}, r.question));
    if (r.proposed) card.append(h('div', { class: 'muted' }, 'Proposed:'), h('pre', {}, JSON.stringify(r.proposed, null, 2)));
    if (r.status !== 'pending') {
      if (r.response) card.append(h('pre', {}, JSON.stringify(r.response, null, 2)));
      return card;
    }
    const reason = h('input', { type: 'text', placeholder: 'reason (optional)', class: 'reason', maxlength: 2000 });
    const act = async (btns, what, body) => {
      btns.forEach((b) => { b.disabled = true; });
      try {
        await api('POST', path + '/' + what, body, 'dash-' + NONCE + '-' + what + '-' + key + '-' + (body.decision || 'answer'));
        card.dataset.status = 'sent';
        card.append(h('p', { class: 'muted sent' }, 'Sent. Waiting for the plan to pick it up…'));
        toast((body.decision ? body.decision + 'd ' : 'answered ') + r.request_id);
        after();
        refreshPendingCount();
      } catch (e) {
        toast('could not send: ' + e.message, true);
        btns.forEach((b) => { b.disabled = false; });
      }
    };
    if (r.kind === 'question') {
      const ans = h('textarea', { class: 'answer', placeholder: 'answer (text, or JSON)', maxlength: 60000 });
      const b = h('button', { type: 'button', class: 'primary', 'data-action': 'answer' }, 'Answer');
      b.addEventListener('click', () => {
        let v = ans.value.trim();
        if (!v) { toast('write an answer first', true); return; }
        try { v = JSON.parse(v); } catch (e) { /* plain text */ }
        act([b], 'answer', { answer: v });
      });
      card.append(ans, h('div', { class: 'actions' }, b));
      return card;
    }
    let budget = null;
    if (r.kind === 'budget_extension' && r.proposed && r.proposed.dimension &&
      r.proposed.suggested_limit) {
      const d = r.proposed.dimension;
      budget = {};
      budget[d] = INT_DIMS.includes(d) ? Math.ceil(r.proposed.suggested_limit) : r.proposed.suggested_limit;
    }
    /* a task's gate (kind "task") is approved or rejected as it is: no edit */
    const edit = r.kind === 'task' ? null : h('textarea', { class: 'edit', placeholder: budget ? 'new limits (JSON)' : 'edit: the result to use instead (JSON, optional)' });
    if (budget) edit.value = JSON.stringify(budget);
    const ok = h('button', { type: 'button', class: 'approve', 'data-action': 'approve' }, 'Approve');
    const no = h('button', { type: 'button', class: 'reject', 'data-action': 'reject' }, 'Reject');
    const both = [ok, no];
    ok.addEventListener('click', () => {
      const body = { decision: 'approve' };
      const text = edit ? edit.value.trim() : '';
      if (text) {
        let v;
        try { v = JSON.parse(text); } catch (e) { toast('the edit is not JSON: ' + e.message, true); return; }
        if (r.kind === 'budget_extension') body.budget = v; else body.edit = v;
      }
      if (reason.value.trim()) body.reason = reason.value.trim();
      act(both, 'decision', body);
    });
    no.addEventListener('click', () => {
      const body = { decision: 'reject' };
      if (reason.value.trim()) body.reason = reason.value.trim();
      act(both, 'decision', body);
    });
    card.append(edit, reason, h('div', { class: 'actions' }, ok, no));
    return card;
  }

  function planPage(main, plan) {
    const title = h('h1', {}, 'Plan ', h('code', {}, plan));
    const head = h('div', { class: 'card', id: 'plan-head' });
    const dag = h('div', { class: 'dag-wrap', id: 'dag' });
    const reqs = h('div', { id: 'plan-requests' });
    const tasks = h('div', { id: 'plan-tasks' });
    const decisions = h('div', { id: 'decisions' });
    const cost = h('div', { id: 'plan-cost' });
    const feed = h('div', { class: 'events card', id: 'events' });
    const modifyBox = modifyEditor(plan, () => load());
    const legend = h('div', { class: 'legend' }, ['pending', 'dispatched', 'running', 'succeeded',
      'waiting_for_input', 'failed', 'dead', 'cancelled', 'skipped'].map((s) => h('span', { class: 'st-' + s }, s)));
    main.append(title, head,
      h('div', { class: 'grid' },
        h('div', {}, h('h2', {}, 'Tasks'), legend, dag, modifyBox.el, h('h2', {}, 'Pending approvals and questions'), reqs,
          h('h2', {}, 'Tasks and attempts'), tasks),
        h('div', {}, h('h2', {}, 'Cost over time'), cost, h('h2', {}, 'Decision log'), decisions,
          h('h2', {}, 'Live events'), feed)));
    let stopped = false, timer = null, busy = false, again = false;
    const load = async () => {
      if (busy) { again = true; return; }
      busy = true;
      try {
        const [pt, atts, decs, rq] = await Promise.all([
          api('GET', '/v1/plans/' + plan),
          api('GET', '/v1/plans/' + plan + '/attempts'),
          api('GET', '/v1/plans/' + plan + '/decisions'),
          api('GET', '/v1/requests?status=pending&limit=1000')]);
        if (stopped) return;
        renderHead(head, pt.plan, load);
        modifyBox.update(pt.plan);
        dag.replaceChildren(dagSvg(pt.tasks));
        renderRequests(reqs, rq.filter((r) => r.plan_id === plan), false, load);
        setPendingCount(rq.length);
        renderTasks(tasks, pt.tasks, atts, plan, TERMINAL.includes(pt.plan.status), load);
        renderDecisions(decisions, decs);
        const pts = atts.filter((a) => a.finished_at).map((a) => [Date.parse(a.finished_at), Number(a.cost_usd || 0)])
          .sort((a, b) => a[0] - b[0]);
        let sum = 0;
        cost.replaceChildren(costChart(pts.map(([t, c]) => [t, (sum += c)]), 'cost-chart-plan', true));
      } catch (e) {
        if (e.status === 404) head.replaceChildren(h('p', { class: 'error' }, 'No such plan (or not visible to this token).'));
        else if (e.status !== 401) toast('could not load the plan: ' + e.message, true);
      } finally {
        busy = false;
        if (again && !stopped) { again = false; schedule(0); }
      }
    };
    /* events arrive in bursts: one reload per burst */
    const schedule = (ms) => { if (!timer) timer = setTimeout(() => { timer = null; load(); }, ms); };
    load();
    const es = streamEvents(plan, (ev) => {
      const d = ev.data || {};
      const line = h('div', { 'data-type': ev.type }, h('span', { class: 'muted' }, ev.id + ' '), ev.type,
        d.task_no !== undefined && d.task_no !== null && d.task_no >= 0 ? ' task ' + d.task_no : '');
      feed.prepend(line);
      while (feed.childNodes.length > 200) feed.lastChild.remove();
      schedule(250);
    }, (state) => {
      setConn(state === 'live' ? 'live' : state === 'finished' ? 'plan finished' : 'reconnecting…');
      if (state === 'finished') schedule(0);
    });
    return { stop() { stopped = true; clearTimeout(timer); es.stop(); } };
  }

  /* Modify the plan: a JSON patch (POST /v1/plans/{id}/modify, see docs/openapi.yaml PlanPatch),
   * prefilled with the current version until the user edits it. */
  function modifyEditor(plan, reload) {
    const text = h('textarea', { id: 'patch', spellcheck: 'false', rows: 8 });
    const send = h('button', { type: 'button', class: 'primary', 'data-action': 'modify' }, 'Apply patch');
    const el = h('details', { id: 'modify', class: 'card' },
      h('summary', {}, 'Modify tasks (add, remove, reorder, edit)'),
      h('p', { class: 'muted' }, 'New act tasks are numbered after every task; a replaced task must not have started; the join is rebuilt. ',
        'Fields: base_version, tasks [{task_no, tier, instructions, refs, after, tool, args}], remove [task numbers], join_instructions, reason.'),
      text, h('div', { class: 'actions' }, send));
    let dirty = false, done = false;
    text.addEventListener('input', () => { dirty = true; });
    const hash = (s) => { let x = 5381; for (let i = 0; i < s.length; i++) x = ((x * 33) ^ s.charCodeAt(i)) >>> 0; return x.toString(16); };
    send.addEventListener('click', async () => {
      let patch;
      try { patch = JSON.parse(text.value); } catch (e) { toast('the patch is not JSON: ' + e.message, true); return; }
      send.disabled = true;
      try {
        const r = await api('POST', '/v1/plans/' + plan + '/modify', patch,
          'dash-' + NONCE + '-modify-' + plan + '-' + hash(text.value));
        toast('modified: version ' + r.version + (r.join ? ', the join is task ' + r.join : ''));
        dirty = false;
        reload();
      } catch (e) { toast('could not modify: ' + e.message, true); }
      send.disabled = false;
    });
    return {
      el,
      update(p) {
        if (TERMINAL.includes(p.status)) { if (!done) { el.hidden = true; done = true; } return; }
        if (!dirty) text.value = JSON.stringify({ base_version: p.version, tasks: [], remove: [] }, null, 1);
      },
    };
  }

  function renderHead(head, p, reload) {
    const cmd = (what, cls) => {
      const b = h('button', { type: 'button', class: cls || '', 'data-action': what }, what);
      b.addEventListener('click', async () => {
        if (what === 'cancel' && !confirm('Cancel this plan?')) return;
        b.disabled = true;
        try {
          await api('POST', '/v1/plans/' + p.plan_id + '/' + what, {}, 'dash-' + NONCE + '-' + what + '-' + p.plan_id + '-' + Date.now());
          toast(what + ' sent');
          reload();
        } catch (e) { toast('could not ' + what + ': ' + e.message, true); }
        b.disabled = false;
      });
      return b;
    };
    const done = TERMINAL.includes(p.status);
    head.replaceChildren(...[
      h('div', { class: 'row' }, h('span', { id: 'plan-status', 'data-status': p.status }, badge(p.status)),
        progress(p.tasks_succeeded, p.tasks_total),
        h('span', {}, fmtInt(p.input_tokens + p.output_tokens) + ' tokens'),
        h('span', { id: 'plan-cost-total' }, fmtUsd(p.cost_usd)),
        h('span', { class: 'muted' }, 'v' + p.version + ' · ' + p.tenant + ' · created ' + fmtTime(p.created_at))),
      h('p', {}, p.goal),
      p.reason ? h('p', { class: 'error' }, p.reason) : null,
      p.output !== null && p.output !== undefined ? h('details', { open: done }, h('summary', {}, 'Answer'),
        h('pre', { id: 'plan-output' }, typeof p.output === 'string' ? p.output : JSON.stringify(p.output, null, 2))) : null,
      done ? null : h('div', { class: 'actions' },
        p.status === 'paused' ? cmd('resume', 'primary') : cmd('pause'), cmd('cancel', 'danger'))]
      .filter((x) => x));
  }

  /* A task that may still be cancelled on its own (the planner and the join may not). */
  const CANCELLABLE = ['pending', 'ready', 'dispatched', 'running', 'failed', 'waiting_for_input',
    'waiting_for_approval'];

  function cancelTaskButton(plan, t, reload) {
    const b = h('button', { type: 'button', class: 'danger', 'data-action': 'cancel-task' }, 'cancel');
    b.addEventListener('click', async () => {
      if (!confirm('Cancel task ' + t.task_no + '? The tasks that need it are skipped.')) return;
      b.disabled = true;
      try {
        await api('POST', '/v1/plans/' + plan + '/tasks/' + t.task_no + '/cancel', {},
          'dash-' + NONCE + '-cancel-task-' + plan + '-' + t.task_no);
        toast('cancel of task ' + t.task_no + ' sent');
        reload();
      } catch (e) {
        toast('could not cancel task ' + t.task_no + ': ' + e.message, true);
        b.disabled = false;
      }
    });
    return b;
  }

  function renderTasks(box, tasks, atts, plan, done, reload) {
    const byTask = new Map();
    for (const a of atts) {
      if (!byTask.has(a.task_no)) byTask.set(a.task_no, []);
      byTask.get(a.task_no).push(a);
    }
    box.replaceChildren(h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, 'Kind'), h('th', {}, 'Status'),
        h('th', {}, 'Tier'), h('th', { class: 'num' }, 'Attempts'), h('th', { class: 'num' }, 'Tokens'),
        h('th', { class: 'num' }, 'Cost'), h('th', {}, 'Instructions'), h('th', {}, ''))),
      h('tbody', {}, tasks.map((t) => {
        const a = byTask.get(t.task_no) || [];
        const tok = a.reduce((s, x) => s + (x.input_tokens || 0) + (x.output_tokens || 0), 0);
        const usd = a.reduce((s, x) => s + Number(x.cost_usd || 0), 0);
        const err = a.filter((x) => x.error_message).map((x) => x.attempt + ': ' + x.error_class + ' ' + x.error_message);
        return h('tr', { 'data-task': t.task_no },
          h('td', {}, t.task_no), h('td', {}, t.kind), h('td', {}, badge(t.status)),
          h('td', {}, t.tier || ''), h('td', { class: 'num' }, t.attempts),
          h('td', { class: 'num' }, fmtInt(tok)), h('td', { class: 'num' }, fmtUsd(usd)),
          h('td', {}, (t.instructions || '').slice(0, 200), err.length ? h('div', { class: 'error' }, err.join('; ')) : null),
          h('td', {}, !done && t.kind === 'act' && CANCELLABLE.includes(t.status) ? cancelTaskButton(plan, t, reload) : null));
      }))));
  }

  function renderDecisions(box, decs) {
    if (!decs.length) { box.replaceChildren(h('p', { class: 'muted' }, 'No decisions yet.')); return; }
    box.replaceChildren(h('table', { id: 'decision-log' },
      h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Who'), h('th', {}, 'Kind'), h('th', {}, 'Why'))),
      h('tbody', {}, decs.slice().reverse().map((d) => h('tr', { 'data-kind': d.kind },
        h('td', {}, fmtTime(d.ts)), h('td', {}, d.actor_kind + (d.actor_id ? ' ' + d.actor_id : '')),
        h('td', {}, d.kind), h('td', {}, d.reasoning || '',
          d.payload ? h('details', {}, h('summary', {}, 'payload'), h('pre', {}, JSON.stringify(d.payload, null, 2))) : null))))));
  }

  /* ---- the DAG: layered layout, left to right ----------------------------------------------- */

  function layout(tasks) {
    const byNo = new Map(tasks.map((t) => [t.task_no, t]));
    const layer = new Map();
    const visiting = new Set();
    const depth = (t) => {
      if (layer.has(t.task_no)) return layer.get(t.task_no);
      if (visiting.has(t.task_no)) return 0; /* a cycle cannot come from the coordinator; stay finite */
      visiting.add(t.task_no);
      let l = 0;
      for (const d of t.depends_on || []) if (byNo.has(d)) l = Math.max(l, depth(byNo.get(d)) + 1);
      visiting.delete(t.task_no);
      layer.set(t.task_no, l);
      return l;
    };
    tasks.forEach(depth);
    const layers = [];
    for (const t of tasks) {
      const l = layer.get(t.task_no);
      (layers[l] = layers[l] || []).push(t);
    }
    /* order each layer by the mean position of its dependencies (one barycentre sweep) */
    const pos = new Map();
    layers.forEach((ts, li) => {
      if (li > 0) {
        const bary = (t) => {
          const ps = (t.depends_on || []).filter((d) => pos.has(d)).map((d) => pos.get(d));
          return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : 0;
        };
        ts.sort((a, b) => bary(a) - bary(b) || a.task_no - b.task_no);
      } else ts.sort((a, b) => a.task_no - b.task_no);
      ts.forEach((t, i) => pos.set(t.task_no, i - (ts.length - 1) / 2));
    });
    return { layers, pos, layer };
  }

  function dagSvg(tasks) {
    const W = 150, H = 48, GX = 48, GY = 20, PAD = 14;
    if (!tasks.length) return h('p', { class: 'muted', id: 'dag-empty' }, 'No tasks yet.');
    const { layers, pos, layer } = layout(tasks);
    const rows = Math.max(...layers.map((l) => (l ? l.length : 0)));
    const width = PAD * 2 + layers.length * W + (layers.length - 1) * GX;
    const height = PAD * 2 + rows * H + (rows - 1) * GY;
    const xy = (t) => [PAD + layer.get(t.task_no) * (W + GX),
      height / 2 + pos.get(t.task_no) * (H + GY) - H / 2];
    const byNo = new Map(tasks.map((t) => [t.task_no, t]));
    const svg = h('svg', { class: 'dag', width, height, viewBox: '0 0 ' + width + ' ' + height,
      role: 'img', 'aria-label': 'task graph', 'data-tasks': tasks.length });
    const edges = h('g', { class: 'edges' });
    for (const t of tasks) {
      const [x2, y2] = xy(t);
      for (const d of t.depends_on || []) {
        const s = byNo.get(d);
        if (!s) continue;
        const [x1, y1] = xy(s);
        const ax = x1 + W, ay = y1 + H / 2, bx = x2, by = y2 + H / 2, mx = (ax + bx) / 2;
        /* an edge that skips layers (into the join, mostly) is drawn lighter */
        const long = layer.get(t.task_no) - layer.get(d) > 1;
        edges.append(h('path', { class: 'edge' + (s.status === 'succeeded' ? ' done' : '') + (long ? ' long' : ''),
          'data-from': d, 'data-to': t.task_no,
          d: `M${ax},${ay} C${mx},${ay} ${mx},${by} ${bx},${by}` }));
      }
    }
    const nodes = h('g', { class: 'nodes' });
    for (const t of tasks) {
      const [x, y] = xy(t);
      const label = '#' + t.task_no + ' ' + t.kind + (t.tool ? ' · ' + t.tool : '');
      const sub = t.status + (t.tier ? ' · ' + t.tier : '') + (t.attempts > 1 ? ' · ' + t.attempts + ' tries' : '');
      nodes.append(h('g', { class: 'node st-' + t.status, 'data-task': t.task_no, 'data-status': t.status,
        transform: `translate(${x},${y})` },
      h('title', {}, label + '\n' + (t.instructions || '')),
      h('rect', { width: W, height: H, rx: 6 }),
      h('rect', { class: 'bar', width: 6, height: H }),
      h('text', { x: 14, y: 20 }, label.length > 21 ? label.slice(0, 20) + '…' : label),
      h('text', { x: 14, y: 37, class: 'sub' }, sub.length > 23 ? sub.slice(0, 22) + '…' : sub)));
    }
    svg.append(edges, nodes);
    return svg;
  }

  /* ---- cost over time: a step line of cumulative cost --------------------------------------- */

  function costChart(points, id, cumulative) {
    const W = 460, H = 160, L = 56, B = 22, T = 10, R = 10;
    const svg = h('svg', { class: 'chart', id, width: W, height: H, viewBox: `0 0 ${W} ${H}`,
      role: 'img', 'aria-label': 'cost over time', 'data-points': points.length });
    if (!points.length) {
      svg.append(h('text', { x: L, y: H / 2 }, 'no cost recorded yet'));
      return svg;
    }
    let pts = points;
    if (!cumulative) { let s = 0; pts = points.map(([t, c]) => [t, (s += c)]); }
    const t0 = pts[0][0], t1 = Math.max(pts[pts.length - 1][0], t0 + 1000);
    const ymax = Math.max(pts[pts.length - 1][1], 1e-6);
    const X = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const Y = (v) => H - B - (v / ymax) * (H - B - T);
    let d = `M${X(t0)},${Y(0)}`;
    for (const [t, v] of pts) d += ` L${X(t)},${Y(v)}`;
    svg.append(
      h('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }),
      h('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }),
      h('path', { class: 'area', d: d + ` L${X(pts[pts.length - 1][0])},${Y(0)} Z` }),
      h('path', { class: 'line', d }),
      h('text', { x: 2, y: T + 8 }, fmtUsd(ymax)),
      h('text', { x: 2, y: H - B }, '$0'),
      h('text', { x: L, y: H - 6 }, new Date(t0).toLocaleTimeString()),
      h('text', { x: W - R - 60, y: H - 6 }, new Date(t1).toLocaleTimeString()));
    return svg;
  }

  /* ---- start ------------------------------------------------------------------------------ */

  $('login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = $('token').value.trim();
    $('token').value = '';
    sessionStorage.setItem(TOKEN_KEY, v);
    try {
      await api('GET', '/v1/plans?limit=1');
      route();
    } catch (err) {
      if (err.status !== 401) showLogin('could not reach the gateway: ' + err.message);
    }
  });
  $('logout').addEventListener('click', () => signOut(''));
  window.addEventListener('hashchange', route);
  route();
})();
