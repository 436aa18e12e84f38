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
// navigator.onLine, sessionStorage for its backoff state) are provided as plain objects by
// streaming_common.cjs, which streaming_session.cjs shares.
'use strict';

const { cause, loadClient, implicitLogin, newClient } = require('./streaming_common.cjs');

const [url, hint, clientId, redirectUri, mode = 'rest'] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
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

const Client = loadClient();

async function main () {
  const authToken = await implicitLogin(url, clientId, redirectUri, hint);
  const client = newClient(Client, url, authToken);
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
