// Auth storm: VUs connect as subscribers back to back, each attempt on a new connection, with a
// valid, expired, wrongly signed or missing token (in turn), and check the hub's answer: a 200
// stream for valid tokens, 401 with an RFC 6750 `WWW-Authenticate: Bearer` challenge otherwise
// (`error="invalid_token"` when a token was presented). Bounded by DURATION.
//
// Tokens are HS256, signed here with k6/crypto's HMAC (checked to match RFC 7515 base64url), in
// the shape `quicksilver token` mints, with a fresh `jti` per attempt so nothing can be cached.
// VALID_TOKEN (e.g. from `quicksilver token --subscribe '*' --aud "$HUB"`) replaces the valid
// one. A valid attempt holds its stream for HOLD: k6 then reports status 0 / error_code 1050
// with no headers (checked on k6 v1.1.0), so its 200 is proven by the `:` preamble.
//
// Env: HUB, SUB_KEY (the hub's subscriber HMAC secret), ISS (https://localhost), AUD (HUB),
// VALID_TOKEN, VUS (64), DURATION (10s), HOLD (200ms), TOPIC.
import http from 'k6/http';
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';
import { check } from 'k6';
import { Trend } from 'k6/metrics';

const HUB = __ENV.HUB || 'http://127.0.0.1:3000/.well-known/mercure';
const SUB_KEY = __ENV.SUB_KEY;
const ISS = __ENV.ISS || 'https://localhost';
const AUD = __ENV.AUD || HUB;
const HOLD = __ENV.HOLD || '200ms';
const TOPIC = __ENV.TOPIC || 'https://example.com/load/auth';
const KINDS = ['valid', 'expired', 'bad_signature', 'missing'];

export const options = {
  vus: Number(__ENV.VUS || 64),
  duration: __ENV.DURATION || '10s',
  noConnectionReuse: true, // every attempt pays TCP connect + authorization
  summaryTrendStats: ['avg', 'min', 'p(50)', 'p(99)', 'max'],
  // `checks` is the pass/fail; the `max>=0` entries only make k6 print one line per kind.
  thresholds: Object.assign(
    { checks: ['rate==1'] },
    ...KINDS.map((k) => ({ [`connect_auth{kind:${k}}`]: ['max>=0'] })),
  ),
};

// TCP connect + request sent + time to the response headers, i.e. until the hub decided.
const connectAuth = new Trend('connect_auth', true);

function b64url(s) {
  return encoding.b64encode(s, 'rawurl');
}

function hs256(claims, key) {
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'at+jwt' }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${crypto.hmac('sha256', key, input, 'base64rawurl')}`;
}

function token(kind) {
  if (kind === 'valid' && __ENV.VALID_TOKEN) return __ENV.VALID_TOKEN;
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: ISS,
    aud: AUD,
    sub: `urn:k6:${__VU}`,
    client_id: ISS,
    jti: `urn:k6:${__VU}:${__ITER}`,
    iat: now - 120,
    exp: kind === 'expired' ? now - 60 : now + 3600,
    authorization_details: [
      {
        type: 'https://mercure.rocks/authorization-detail',
        actions: ['subscribe'],
        topics: [{ match: '*' }],
      },
    ],
  };
  return hs256(claims, kind === 'bad_signature' ? `${SUB_KEY}-but-wrong` : SUB_KEY);
}

function header(res, name) {
  const key = Object.keys(res.headers).find((k) => k.toLowerCase() === name);
  return key === undefined ? '' : res.headers[key];
}

export default function () {
  const kind = KINDS[(__VU + __ITER) % KINDS.length];
  const headers = { Accept: 'text/event-stream' };
  if (kind !== 'missing') headers.Authorization = `Bearer ${token(kind)}`;
  const res = http.get(`${HUB}?match=${encodeURIComponent(TOPIC)}`, {
    headers,
    timeout: HOLD,
    tags: { name: kind, kind },
  });
  const t = res.timings;
  connectAuth.add(t.connecting + t.tls_handshaking + t.sending + t.waiting, { kind });
  if (kind === 'valid') {
    check(res, {
      'valid: 200 stream (":" preamble), held until HOLD': (r) =>
        r.error_code === 1050 && (r.body || '').startsWith(':'),
    });
    return;
  }
  const challenge = header(res, 'www-authenticate');
  check(res, {
    [`${kind}: 401`]: (r) => r.status === 401,
    [`${kind}: WWW-Authenticate: Bearer`]: () => challenge.startsWith('Bearer'),
    [`${kind}: ${kind === 'missing' ? 'no error code' : 'error="invalid_token"'}`]: () =>
      (kind === 'missing') !== challenge.includes('error="invalid_token"'),
  });
}
