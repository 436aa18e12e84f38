// The official genesys-cloud-streaming-client against the chaosgenesys sandbox.
//
// Run by tests/sandbox/test_streaming_official_client.py:
//   node tests/js/streaming_presence.cjs <sandbox url> <user id or email> <client id> <redirect uri> <mode>
//
// 1. logs the user in through the sandbox's implicit grant (GET /oauth/authorize with
//    login_hint, the 302's #access_token fragment), as a browser app does;
// 2. creates the official Client with host/apiHost pointing at the sandbox (client.ts builds
//    `${host}/stream/channels/${channelId}` and, since apiHost starts with http, uses
//    `${apiHost}/api/v2/...` as is), connects and waits for `connected`;
// 3. subscribes to v2.users.{id}.presence through the client's notifications API: "rest"
//    (default: debounced bulk PUT .../subscriptions) or "xmpp" (immediate: XMPP pubsub
//    subscribe on notifications.<apiHost>);
// 4. prints one JSON line per step on stdout: {"step":"subscribed","userId":...}, then
//    {"step":"event","topic":...,"data":...} when the event arrives, and exits 0; exits 1 with
//    {"step":"error",...} on a failure or after 30 s.
// Mode "invalid_token" stops after `connected` ({"step":"connected","channelId":...}) and
// reports the client's own `disconnected` events ({"step":"disconnected","reconnecting",
// "errorType"}) until it gives up reconnecting, then exits 0: the test revokes the token and
// displaces the session, so the client's reconnect meets a SASL failure. Release 19.4.1 gives
// up by rejecting the promise of its background reconnect (a browser logs that; Node would
// crash), reported as {"step":"gave_up","errorType"}; later releases emit `disconnected`
// with the error instead.
//
// The client is written for browsers: the few browser globals it reads (window events,
// navigator.onLine, sessionStorage for its backoff state) are provided here as plain objects.
'use strict';

const [url, hint, clientId, redirectUri, mode = 'rest'] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
// What a StreamingClientError wraps: a SaslError's condition, or an HTTP status.
const cause = (error) => {
  const details = error.details || {};
  if (details.condition) return `sasl:${details.condition}`;
  if (details.response) return `http:${details.response.status}`;
  return details.name || null;
};
const fail = (message) => { out({ step: 'error', message: String(message) }); process.exit(1); };
if (!url || !hint || !clientId || !redirectUri || !['rest', 'xmpp', 'invalid_token'].includes(mode)) {
  fail('usage: streaming_presence.cjs <url> <login hint> <client id> <redirect uri> <rest|xmpp|invalid_token>');
}
setTimeout(() => fail('timed out after 30 s'), 30000).unref();
process.on('unhandledRejection', (reason) => {
  if (reason && typeof reason.type === 'string') {
    out({ step: 'gave_up', errorType: reason.type, cause: cause(reason) });
    process.exit(mode === 'invalid_token' ? 0 : 1);
  }
  fail(`unhandled rejection: ${reason && (reason.stack || reason.message)}`);
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
// Required before `window` exists, so browser sniffing at load time (browserama) sees Node.
const Client = require('genesys-cloud-streaming-client').default;
// The webrtc extension listens for window's online/offline events when a Client is created.
globalThis.window = Object.assign(new EventTarget(), { atob: globalThis.atob, crypto: globalThis.crypto });

async function implicitLogin () {
  const authorize = new URL('/oauth/authorize', url);
  authorize.search = new URLSearchParams({
    response_type: 'token', client_id: clientId, redirect_uri: redirectUri,
    login_hint: hint, state: 'streaming-test'
  }).toString();
  const response = await fetch(authorize, { redirect: 'manual' });
  if (response.status !== 302) {
    throw new Error(`authorize answered ${response.status}: ${await response.text()}`);
  }
  const fragment = new URLSearchParams(new URL(response.headers.get('location')).hash.slice(1));
  if (fragment.get('state') !== 'streaming-test' || !fragment.get('access_token')) {
    throw new Error('the redirect carries no access_token or the wrong state');
  }
  return fragment.get('access_token');
}

async function main () {
  const authToken = await implicitLogin();
  const quiet = process.env.STREAMING_CLIENT_DEBUG ? console.error : () => {};
  const logger = { log: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet };
  const wsHost = url.replace(/^http/, 'ws');
  const client = new Client({
    host: wsHost,
    apiHost: url,
    authToken,
    appName: 'chaosgenesys-test',
    optOutOfWebrtcStatsTelemetry: true,
    logLevel: 'debug',
    logger
  });
  client.on('disconnected', (info) => {
    const reconnecting = !!(info && info.reconnecting);
    const error = info && info.error;
    out({ step: 'disconnected', reconnecting, errorType: error ? error.type : null, cause: error ? cause(error) : null });
    if (mode === 'invalid_token' && !reconnecting) {
      process.exit(0);
    }
  });
  await client.connect({ keepTryingOnFailure: false });
  if (mode === 'invalid_token') {
    out({ step: 'connected', channelId: client.config.channelId });
    return;
  }
  const me = await fetch(new URL('/api/v2/users/me', url), { headers: { Authorization: `Bearer ${authToken}` } });
  const userId = (await me.json()).id;
  const topic = `v2.users.${userId}.presence`;
  const received = new Promise((resolve) => {
    client.notifications.subscribe(topic, (data) => resolve(data), mode === 'xmpp').then(
      () => out({ step: 'subscribed', userId, topic, mode }),
      (err) => fail(`subscribe failed: ${err && err.message}`)
    );
  });
  const data = await received;
  out({ step: 'event', topic, data });
  await client.disconnect();
  process.exit(0);
}

main().catch((err) => fail(err && (err.stack || err.message || JSON.stringify(err))));
