// Publish load: each virtual user POSTs updates back to back (form-encoded, like every Mercure
// publisher). Env: HUB (hub URL), TOKEN (publisher token), VUS (default 64), DURATION (10s),
// SIZE (data bytes, 512), TOPICS (distinct topics, 16). Bounded by DURATION.
import http from 'k6/http';
import { check } from 'k6';

export const options = {
  vus: Number(__ENV.VUS || 64),
  duration: __ENV.DURATION || '10s',
  summaryTrendStats: ['avg', 'p(50)', 'p(99)', 'max'],
};

const HUB = __ENV.HUB || 'http://127.0.0.1:3000/.well-known/mercure';
const TOKEN = __ENV.TOKEN;
const DATA = 'x'.repeat(Number(__ENV.SIZE || 512));
const TOPICS = Number(__ENV.TOPICS || 16);

export default function () {
  const res = http.post(
    HUB,
    { topic: `https://example.com/load/${__ITER % TOPICS}`, data: DATA },
    { headers: { Authorization: `Bearer ${TOKEN}` } },
  );
  check(res, { 'published (200)': (r) => r.status === 200 });
}
