// A long-lived session of the official genesys-cloud-streaming-client against the sandbox, for
// tests that fault its connection and watch it recover by its own logic
// (tests/sandbox/streaming_driver.py runs it).
//
//   node tests/js/streaming_session.cjs <sandbox or proxy url> <user id or email> <client id> <redirect uri>
//
// It logs the user in through the implicit grant (streaming_common.cjs), connects once with
// connect({keepTryingOnFailure: false}) (as an app does), and from then on only watches: every
// reconnect is the client's own (client.ts handleStanzaDisconnectedEvent -> connect with
// keepTryingOnFailure: true and its backoff). It prints one JSON line per event on stdout, each
// with "t", CLOCK_MONOTONIC in seconds (process.hrtime, the clock Python's time.monotonic reads):
//
//   {"event":"connected","channelId","backoff"}        the client's `connected` (XMPP session started)
//   {"event":"disconnected","reconnecting","errorType","cause","backoff","lastIncoming"}
//                                                      the client's `disconnected`; lastIncoming:
//                                                      when the last WebSocket frame arrived
//   {"event":"gave_up","errorType","cause","backoff"}  19.4.1 rejects its background reconnect's
//                                                      promise when it stops retrying (invalid_token)
//   {"event":"ws","phase":"attempt|open|close|error","path","code","status"}   each WebSocket
//                                                      the client's stanza instances open (the `ws`
//                                                      package, observed: listeners only)
//   {"event":"notify","topic","data"}                  the client's `notify`: a pubsub event
//   {"event":"subscribed","topic"}, {"event":"log","level","message","connectionAttempt","retryDelay"}
//                                                      (the client's own warn/error log lines,
//                                                      message text and those two numbers only:
//                                                      never a token)
//   {"event":"error","message"}                        a failure of this script
//
// "backoff" is what the client keeps in sessionStorage (`sc_connectionData_<appName>`,
// client.ts getSessionStoreKey): {currentDelayMs, ...} or null.
//
// Commands, one JSON object a line on stdin: {"cmd":"subscribe","topic","immediate":bool},
// {"cmd":"disconnect"}. It exits 0 when stdin closes or on SIGTERM (after the client's own
// disconnect, 5 s at most), 1 when the first connect fails.
'use strict';

const path = require('path');
const readline = require('readline');
const { cause, storage, loadClient, implicitLogin, newClient } = require('./streaming_common.cjs');

const [url, hint, clientId, redirectUri] = process.argv.slice(2);
const now = () => Number(process.hrtime.bigint()) / 1e9;
const out = (obj) => process.stdout.write(JSON.stringify({ t: now(), ...obj }) + '\n');
if (!url || !hint || !clientId || !redirectUri) {
  out({ event: 'error', message: 'usage: streaming_session.cjs <url> <login hint> <client id> <redirect uri>' });
  process.exit(2);
}

const backoff = () => {
  for (const [key, value] of storage) {
    if (key.startsWith('sc_connectionData_')) {
      try { return { key, ...JSON.parse(value) }; } catch (e) { return { key, unparsed: true }; }
    }
  }
  return null;
};

// Observe the WebSockets the client's stanza instances open: stanza's node platform takes its
// WebSocket class from the `ws` package at load time, so the class is swapped for a subclass
// (same behaviour, listeners added) before the client is required. Only `open`, `close` and
// `error` listeners are added: an `unexpected-response` listener would change how ws fails.
let lastIncoming = null; // when the last frame arrived, on any of the client's sockets
const wsPath = require.resolve('ws', { paths: [path.dirname(require.resolve('stanza'))] });
const RealWebSocket = require(wsPath);
class ObservedWebSocket extends RealWebSocket {
  constructor (address, ...rest) {
    super(address, ...rest);
    const where = new URL(address).pathname;
    out({ event: 'ws', phase: 'attempt', path: where });
    this.on('open', () => out({ event: 'ws', phase: 'open', path: where }));
    this.on('message', () => { lastIncoming = now(); });
    this.on('error', (err) => {
      const status = /Unexpected server response: (\d+)/.exec(String(err && err.message));
      out({ event: 'ws', phase: 'error', path: where, status: status ? Number(status[1]) : null, message: String(err && err.message) });
    });
    this.on('close', (code) => out({ event: 'ws', phase: 'close', path: where, code }));
  }
}
require.cache[wsPath].exports = ObservedWebSocket;

const Client = loadClient();
let client = null;
let stopping = false;

process.on('unhandledRejection', (reason) => {
  if (reason && typeof reason.type === 'string') {
    // 19.4.1: the reconnect started from handleStanzaDisconnectedEvent rejects when its
    // retry handler says no more (a non-retryable SASL failure, 401/403).
    out({ event: 'gave_up', errorType: reason.type, cause: cause(reason), backoff: backoff() });
    return;
  }
  out({ event: 'error', message: `unhandled rejection: ${reason && (reason.stack || reason.message)}` });
});

async function stop (code) {
  if (stopping) return;
  stopping = true;
  try {
    if (client) await client.disconnect();
  } catch (err) {
    // the client's own 5 s timeout: exit anyway
  }
  out({ event: 'exiting' });
  process.exit(code);
}

function log (level, message, details) {
  if (level !== 'warn' && level !== 'error') return;
  const text = message instanceof Error ? message.message : String(message);
  const entry = { event: 'log', level, message: text };
  if (details && typeof details === 'object') {
    if (typeof details.connectionAttempt === 'number') entry.connectionAttempt = details.connectionAttempt;
    if (typeof details.retryDelay === 'number') entry.retryDelay = details.retryDelay;
  }
  out(entry);
}

async function command (line) {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    out({ event: 'error', message: `not a JSON command: ${line.slice(0, 80)}` });
    return;
  }
  if (cmd.cmd === 'subscribe') {
    const topic = String(cmd.topic);
    try {
      await client.notifications.subscribe(topic, () => {}, !!cmd.immediate);
      out({ event: 'subscribed', topic });
    } catch (err) {
      out({ event: 'error', message: `subscribe ${topic} failed: ${err && (err.message || err.type)}` });
    }
  } else if (cmd.cmd === 'disconnect') {
    await client.disconnect();
    out({ event: 'disconnect_called' });
  } else {
    out({ event: 'error', message: `unknown command ${JSON.stringify(cmd.cmd)}` });
  }
}

async function main () {
  const authToken = await implicitLogin(url, clientId, redirectUri, hint);
  client = newClient(Client, url, authToken, log);
  // every pubsub event, system topics included (notifications.ts pubsubEvent: no_longer_subscribed,
  // duplicate_id are reported under those names)
  client.on('notify', ({ topic, data }) => out({ event: 'notify', topic, data }));
  client.on('connected', () => out({ event: 'connected', channelId: client.config.channelId, backoff: backoff() }));
  client.on('disconnected', (info) => {
    const error = info && info.error;
    out({
      event: 'disconnected',
      reconnecting: !!(info && info.reconnecting),
      errorType: error ? error.type : null,
      cause: error ? cause(error) : null,
      backoff: backoff(),
      lastIncoming
    });
  });
  try {
    await client.connect({ keepTryingOnFailure: false });
  } catch (err) {
    out({ event: 'error', message: `first connect failed: ${err && (err.message || err.type)}`, cause: cause(err) });
    process.exit(1);
  }
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (line) => { if (line.trim()) command(line).catch((err) => out({ event: 'error', message: String(err) })); });
  lines.on('close', () => stop(0));
}

process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));
main().catch((err) => { out({ event: 'error', message: String(err && (err.stack || err.message)) }); process.exit(1); });
