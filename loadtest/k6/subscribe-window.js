// Subscriber windows under a publish load: each subscriber VU holds one SSE subscription for
// WINDOW with `http.get(url, {timeout})`, while a publisher scenario publishes RATE updates/s
// carrying their publish time. Bounded by DURATION (plus one WINDOW for the last windows).
//
// What k6 (v1.1.0, checked) returns when the timeout cuts a streaming body: status 0, error
// "request timeout", error_code 1050, NO headers, and the partial body received so far; a
// warning "Request Failed" is logged for each window. So the 200 is proven by the `:` preamble
// (the hub sends it only on a 200 stream), and events are parsed from the partial body.
// k6 hands over the body only when the window ends, so no per-event arrival time exists: the
// latency metric is a bound (see sse_latency_bound below), never a per-event measurement.
//
// Env: HUB (hub URL), TOKEN (publisher token), SUB_TOKEN (subscriber token; none = anonymous),
// SUBSCRIBERS (subscriber VUs, 100), WINDOW (5s), RATE (publishes/s, 100), DURATION (10s),
// SIZE (padding bytes in data, 64), TOPIC.
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';

const HUB = __ENV.HUB || 'http://127.0.0.1:3000/.well-known/mercure';
const TOKEN = __ENV.TOKEN;
const SUB_TOKEN = __ENV.SUB_TOKEN;
const WINDOW = __ENV.WINDOW || '5s';
const DURATION = __ENV.DURATION || '10s';
const TOPIC = __ENV.TOPIC || 'https://example.com/load/window';
const PAD = 'x'.repeat(Number(__ENV.SIZE || 64));

export const options = {
  scenarios: {
    subscribers: {
      executor: 'constant-vus',
      exec: 'subscribe',
      vus: Number(__ENV.SUBSCRIBERS || 100),
      duration: DURATION,
      gracefulStop: '30s', // a window in progress at the end runs to its own timeout
    },
    publisher: {
      executor: 'constant-arrival-rate',
      exec: 'publish',
      rate: Number(__ENV.RATE || 100),
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 8,
      maxVUs: 32,
    },
  },
  summaryTrendStats: ['avg', 'min', 'p(50)', 'p(99)', 'max'],
  // `checks` is the pass/fail; the `max>=0` entries only make k6 print the publish submetrics.
  thresholds: {
    checks: ['rate==1'],
    'http_req_duration{name:publish}': ['max>=0'],
    'http_reqs{name:publish}': ['count>=0'],
  },
};

// Events parsed from the partial bodies, and interior gaps in a publisher VU's sequence
// (an update published while the window was open but never delivered).
const received = new Counter('sse_events_received');
const missed = new Counter('sse_events_missed');
// Window end minus the publish time of the newest event received: an upper bound on that
// event's delivery latency, loose by up to one publish interval and by k6's own handling of the
// cut (tens of ms here; loadtest/scenarios/subscribe-window/raw_subscriber.py measures the real
// per-event latency alongside).
const latencyBound = new Trend('sse_latency_bound', true);
// Connect + request + time to the response headers (the hub answers after authorization).
const ttfb = new Trend('sse_subscribe_ttfb', true);

export function publish() {
  const data = JSON.stringify({ t: Date.now(), vu: __VU, n: __ITER, pad: PAD });
  const res = http.post(
    HUB,
    { topic: TOPIC, data },
    { headers: { Authorization: `Bearer ${TOKEN}` }, tags: { name: 'publish' } },
  );
  check(res, { 'published (200)': (r) => r.status === 200 });
}

export function subscribe() {
  const headers = { Accept: 'text/event-stream' };
  if (SUB_TOKEN) headers.Authorization = `Bearer ${SUB_TOKEN}`;
  const url = `${HUB}?match=${encodeURIComponent(TOPIC)}`;
  const res = http.get(url, { headers, timeout: WINDOW, tags: { name: 'subscribe window' } });
  const end = Date.now();
  const body = res.body || '';
  check(res, {
    'stream held for the whole window (k6 timeout, 1050)': (r) => r.error_code === 1050,
    'preamble ":" (a 200 SSE stream)': () => body.startsWith(':'),
  });
  ttfb.add(res.timings.connecting + res.timings.sending + res.timings.waiting);

  // Complete events only: the cut may fall inside the last one.
  const blocks = body.split('\n\n');
  blocks.pop();
  let count = 0;
  let newest = 0;
  const last = {}; // publisher VU -> last sequence number seen
  for (const block of blocks) {
    const data = block
      .split('\n')
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(l.startsWith('data: ') ? 6 : 5))
      .join('\n');
    if (!data) continue; // the preamble, heartbeats
    const u = JSON.parse(data);
    count += 1;
    newest = Math.max(newest, u.t);
    if (last[u.vu] !== undefined && u.n > last[u.vu] + 1) missed.add(u.n - last[u.vu] - 1);
    last[u.vu] = u.n;
  }
  received.add(count);
  missed.add(0); // so the counter shows in the summary even when nothing was missed
  if (newest > 0) latencyBound.add(end - newest);
}
