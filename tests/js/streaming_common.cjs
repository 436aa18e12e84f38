// What the scripts that run the official genesys-cloud-streaming-client against the sandbox
// share (streaming_presence.cjs, streaming_session.cjs):
//
// - loadClient(): the browser globals the client reads (sessionStorage for its backoff state,
//   navigator.onLine, window events), provided as plain objects, and the client's class;
// - implicitLogin(): a user token through the sandbox's implicit grant, as a browser app gets it;
// - newClient(): the official Client pointed at the sandbox (or a proxy in front of it);
// - cause(): what a StreamingClientError wraps (a SASL condition or an HTTP status).
'use strict';

// What a StreamingClientError wraps: a SaslError's condition, or an HTTP status.
function cause (error) {
  const details = (error && error.details) || {};
  if (details.condition) return `sasl:${details.condition}`;
  if (details.response) return `http:${details.response.status}`;
  return details.name || null;
}

// sessionStorage as a Map, so a script can read what the client remembers.
const storage = new Map();

function loadClient () {
  globalThis.sessionStorage = {
    getItem: (key) => (storage.has(key) ? storage.get(key) : null),
    setItem: (key, value) => storage.set(key, String(value)),
    removeItem: (key) => storage.delete(key),
    clear: () => storage.clear(),
    key: (index) => Array.from(storage.keys())[index] ?? null,
    get length () { return storage.size; }
  };
  if (typeof globalThis.navigator === 'undefined') {
    globalThis.navigator = { onLine: true, userAgent: 'node' };
  }
  // Required before `window` exists, so browser sniffing at load time (browserama) sees Node.
  const Client = require('genesys-cloud-streaming-client').default;
  // The webrtc extension listens for window's online/offline events when a Client is created.
  globalThis.window = Object.assign(new EventTarget(), { atob: globalThis.atob, crypto: globalThis.crypto });
  return Client;
}

async function implicitLogin (url, clientId, redirectUri, hint, state = 'streaming-test') {
  const authorize = new URL('/oauth/authorize', url);
  authorize.search = new URLSearchParams({
    response_type: 'token', client_id: clientId, redirect_uri: redirectUri,
    login_hint: hint, state
  }).toString();
  const response = await fetch(authorize, { redirect: 'manual' });
  if (response.status !== 302) {
    throw new Error(`authorize answered ${response.status}: ${await response.text()}`);
  }
  const fragment = new URLSearchParams(new URL(response.headers.get('location')).hash.slice(1));
  if (fragment.get('state') !== state || !fragment.get('access_token')) {
    throw new Error('the redirect carries no access_token or the wrong state');
  }
  return fragment.get('access_token');
}

// The official Client against `url` (the sandbox, or a reverse proxy in front of it): the
// client builds `${host}/stream/channels/${channelId}` and, since apiHost starts with http,
// uses `${apiHost}/api/v2/...` as is. `logger` receives the client's log (level, message,
// details); by default it is quiet unless STREAMING_CLIENT_DEBUG is set.
function newClient (Client, url, authToken, logger) {
  const quiet = process.env.STREAMING_CLIENT_DEBUG ? console.error : () => {};
  const sink = logger || (() => {});
  const level = (name) => (message, details) => { quiet(message, details); sink(name, message, details); };
  return new Client({
    host: url.replace(/^http/, 'ws'),
    apiHost: url,
    authToken,
    appName: 'chaosgenesys-test',
    optOutOfWebrtcStatsTelemetry: true,
    logLevel: 'debug',
    logger: { log: level('log'), debug: level('debug'), info: level('info'), warn: level('warn'), error: level('error') }
  });
}

module.exports = { cause, storage, loadClient, implicitLogin, newClient };
