// One official genesys-cloud-streaming-client (npm, pinned in package-lock.json) for the
// benchmarks: the sample of real clients beside the load clients of streaming_reconnect.py.
//
//   node benchmarks/streaming_sample.cjs <sandbox url> <login hint> <client id> <redirect uri> <topic>
//
// As tests/js/streaming_presence.cjs does: logs the user in through the sandbox's implicit
// grant (login_hint), creates the official Client with host/apiHost pointing at the sandbox,
// connect({keepTryingOnFailure: true}), subscribes to <topic> through the client's default
// (REST, debounced bulk PUT). Then it stays connected, reconnecting the way its own code
// decides, and prints one JSON line per thing it saw, with t = Date.now() (ms):
//   {"step":"connected","t"}            every `connected` event of the client
//   {"step":"disconnected","t","reconnecting"}   every `disconnected` event
//   {"step":"subscribed","t"}           the subscription is in place
//   {"step":"event","t","topic"}        an event on <topic>
//   {"step":"http","t","status","url"}  every HTTP answer the client got (axios, which the
//                                       client uses), and a refused WebSocket upgrade (ws)
//   {"step":"error","message"}          then exit 1
// It ends (client.disconnect(), exit 0) when its standard input closes.
// Browser globals the client reads are provided as in tests/js/streaming_presence.cjs.
'use strict';

const [url, hint, clientId, redirectUri, topic] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify({ ...obj, t: Date.now() }) + '\n');
const fail = (message) => { out({ step: 'error', message: String(message) }); process.exit(1); };
if (!url || !hint || !clientId || !redirectUri || !topic) {
  fail('usage: streaming_sample.cjs <url> <login hint> <client id> <redirect uri> <topic>');
}
process.on('unhandledRejection', (reason) => {
  fail(`unhandled rejection: ${reason && (reason.stack || reason.message || reason.type)}`);
});

const storage = new Map();
globalThis.sessionStorage = {
  getItem: (key) => (storage.has(key) ? storage.get(key) : null),
  setItem: (key, value) => storage.set(key, String(value)),
  removeItem: (key) => storage.delete(key),
  clear: () => storage.clear()
};
if (typeof globalThis.navigator === 'undefined') {
  globalThis.navigator = { onLine: true, userAgent: 'node' };
}
// Every HTTP answer the client gets: it uses axios (http-client.js) and ws (stanza's Node
// transport); both resolve to the single copies in node_modules.
const axios = require('axios');
axios.interceptors.response.use(
  (response) => { out({ step: 'http', status: response.status, url: response.config.url }); return response; },
  (error) => {
    const status = error.response ? error.response.status : 0;
    out({ step: 'http', status, url: error.config && error.config.url });
    return Promise.reject(error);
  }
);
const WS = require('ws');
const emit = WS.prototype.emit;
WS.prototype.emit = function (name, ...args) {
  if (name === 'unexpected-response' && args[1]) {
    out({ step: 'http', status: args[1].statusCode, url: 'websocket upgrade' });
  }
  return emit.call(this, name, ...args);
};
const Client = require('genesys-cloud-streaming-client').default;
globalThis.window = Object.assign(new EventTarget(), { atob: globalThis.atob, crypto: globalThis.crypto });

async function implicitLogin () {
  const authorize = new URL('/oauth/authorize', url);
  authorize.search = new URLSearchParams({
    response_type: 'token', client_id: clientId, redirect_uri: redirectUri,
    login_hint: hint, state: 'streaming-sample'
  }).toString();
  const response = await fetch(authorize, { redirect: 'manual' });
  if (response.status !== 302) {
    throw new Error(`authorize answered ${response.status}`);
  }
  const fragment = new URLSearchParams(new URL(response.headers.get('location')).hash.slice(1));
  if (fragment.get('state') !== 'streaming-sample' || !fragment.get('access_token')) {
    throw new Error('the redirect carries no access_token or the wrong state');
  }
  return fragment.get('access_token');
}

async function main () {
  const authToken = await implicitLogin();
  const quiet = () => {};
  const logger = { log: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet };
  const client = new Client({
    host: url.replace(/^http/, 'ws'),
    apiHost: url,
    authToken,
    appName: 'chaosgenesys-benchmark',
    optOutOfWebrtcStatsTelemetry: true,
    logger
  });
  client.on('connected', () => out({ step: 'connected' }));
  client.on('disconnected', (info) => out({ step: 'disconnected', reconnecting: !!(info && info.reconnecting) }));
  process.stdin.on('end', () => {
    client.disconnect().finally(() => process.exit(0));
  });
  process.stdin.resume();
  await client.connect({ keepTryingOnFailure: true });
  await client.notifications.subscribe(topic, () => out({ step: 'event', topic }));
  out({ step: 'subscribed' });
}

main().catch((err) => fail(err && (err.stack || err.message || JSON.stringify(err))));
