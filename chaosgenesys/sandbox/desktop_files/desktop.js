/*
 * The chaosgenesys reference web desktop (docs/reference-desktop.md).
 *
 * A stand-in for the closed-source Genesys Cloud agent desktop, built only on the official
 * libraries the sandbox serves from node_modules/: purecloud-platform-client-v2 (login with
 * authorization code + PKCE, every REST call) and genesys-cloud-streaming-client (XMPP
 * notifications; its reconnect logic is the library's own: this page never reconnects).
 *
 *   /desktop/?user=<seeded user email or id>   logs that user in without a form (login_hint);
 *   /desktop/                                  the sandbox's own login form asks for the user.
 *   optional: &answer_ms=<n> (default 500) &wrapup_ms=<n> (default 2000): the synthetic
 *   agent's answer delay and wrap-up time (chaosgenesys/agent/config.py);
 *   &renew_ahead_s=<n> (default 60): renew the token that long before it expires (at most
 *   half its life ahead).
 *
 * After login it connects the streaming client, subscribes to the user's presence, routing
 * status and conversations topics, reads its active calls (GET /api/v2/conversations: one
 * routed before the subscription is not missed; again after every reconnect), goes On Queue,
 * answers alerting calls and submits the
 * wrap-up when a call ends, as the synthetic agent (chaosgenesys/agent/) does.
 * It renews its token ahead of expiry and on a 401 (the guide's trap 2), with the same PKCE
 * login done without leaving the page, and hands the new token to the streaming client.
 * The state is shown under stable attributes: [data-cg="presence"], [data-cg="routing-status"],
 * [data-cg="connection"] (text and data-state: connected / disconnected / reconnecting),
 * [data-cg="call-state"] (none / alerting / connected / wrapup), [data-cg="user"]
 * (data-user-id, data-email), [data-cg="error"]. Every step is logged with console.info, every
 * failure with console.error; no token is ever logged.
 */
'use strict';

(function desktop () {
  const CLIENT_ID = 'chaosgenesys-desktop'; // the sandbox's built-in public client
  const REDIRECT_URI = `${window.location.origin}/desktop/`;
  const TAG = '[desktop]';
  // The login leaves the page and comes back to /desktop/?code=…&state=…: the page's own
  // query (user, answer_ms, wrapup_ms) and the login's state wait in sessionStorage meanwhile.
  const QUERY_KEY = 'chaosgenesys-desktop-query';
  const STATE_KEY = 'chaosgenesys-desktop-state';
  const current = new URLSearchParams(window.location.search);
  const returning = current.has('code') || current.has('error');
  if (!returning) sessionStorage.setItem(QUERY_KEY, window.location.search);
  const params = new URLSearchParams(returning ? sessionStorage.getItem(QUERY_KEY) || '' : window.location.search);
  const hint = (params.get('user') || '').trim();
  const number = (name, fallback) => {
    const value = Number(params.get(name));
    return params.has(name) && Number.isFinite(value) && value >= 0 ? value : fallback;
  };
  const ANSWER_MS = number('answer_ms', 500);
  const WRAPUP_MS = number('wrapup_ms', 2000);
  const RENEW_AHEAD_MS = number('renew_ahead_s', 60) * 1000;

  const el = (name) => document.querySelector(`[data-cg="${name}"]`);
  const info = (...args) => console.info(TAG, ...args);

  /** What an error says, never what it carries (an HTTP error object holds request headers). */
  function describe (error) {
    if (!error) return 'unknown error';
    if (typeof error === 'string') return error;
    const parts = [];
    if (typeof error.status === 'number') parts.push(`HTTP ${error.status}`);
    if (typeof error.code === 'string') parts.push(error.code);
    if (typeof error.type === 'string') parts.push(error.type);
    if (typeof error.message === 'string') parts.push(error.message);
    return parts.join(' ').replace(/Bearer\s+\S+/gi, 'Bearer <hidden>') || 'unknown error';
  }
  function fail (what, error) {
    console.error(TAG, `${what} failed: ${describe(error)}`);
  }
  function fatal (text) {
    console.error(TAG, text);
    const box = el('error');
    box.textContent = text;
    box.hidden = false;
  }

  function setConnection (state) {
    const banner = el('connection');
    if (banner.dataset.state !== state) info(`connection: ${state}`);
    banner.dataset.state = state;
    banner.textContent = state;
  }
  function setPresence (name) {
    if (!name) return;
    if (el('presence').textContent !== name) info(`presence: ${name}`);
    el('presence').textContent = name;
  }
  function setRouting (status) {
    if (!status) return;
    if (el('routing-status').textContent !== status) info(`routing status: ${status}`);
    el('routing-status').textContent = status;
  }

  // ------------------------------------------------------------------ the libraries
  if (typeof window.require !== 'function' || typeof window.GenesysCloudStreamingClient !== 'function') {
    const missing = [];
    if (typeof window.require !== 'function') missing.push('/desktop/lib/purecloud-platform-client-v2.js');
    if (typeof window.GenesysCloudStreamingClient !== 'function') missing.push('/desktop/lib/streaming-client.browser.js');
    fatal(`the official libraries did not load (${missing.join(', ')}): ` +
      'the sandbox serves them from node_modules/; run scripts/bootstrap (npm ci) first');
    return;
  }
  const platformClient = window.require('platformClient');
  const StreamingClient = window.GenesysCloudStreamingClient;
  const api = platformClient.ApiClient.instance;
  api.setGateway({
    host: window.location.hostname,
    protocol: window.location.protocol.replace(':', ''),
    port: window.location.port ? Number(window.location.port) : undefined
  });
  const usersApi = new platformClient.UsersApi();
  const presenceApi = new platformClient.PresenceApi();
  const conversationsApi = new platformClient.ConversationsApi();
  const routingApi = new platformClient.RoutingApi();

  let me = null; // {id, name, email}
  let streaming = null;
  let connectedOnce = false;
  let wrapupCode = null;
  let renewTimer = null;
  let renewing = null; // the renewal under way: every 401 waits for the same one
  const calls = new Map(); // conversation id -> what the page knows of its call

  // ------------------------------------------------------------------ the token
  const randomHex = () => {
    const random = new Uint8Array(16);
    window.crypto.getRandomValues(random);
    return Array.from(random, (b) => b.toString(16).padStart(2, '0')).join('');
  };

  function scheduleRenewal (expiryTime) {
    clearTimeout(renewTimer);
    if (typeof expiryTime !== 'number') return;
    const left = expiryTime - Date.now();
    const wait = Math.max(0, left - Math.min(RENEW_AHEAD_MS, left / 2));
    info(`token renewal in ${Math.round(wait / 1000)} s`);
    renewTimer = setTimeout(() => {
      renew('ahead of expiry').catch((error) => fail('renewing the token', error));
    }, wait);
  }

  /**
   * The same login again without leaving the page: /oauth/authorize (login_hint: the user)
   * answers at once with the 302 back to /desktop/?code=…, which fetch follows (same origin, so
   * its URL is readable); the SDK exchanges the code with a new verifier and keeps the token.
   */
  function renew (why) {
    if (renewing) return renewing;
    renewing = (async () => {
      if (!me) throw new Error('nobody is logged in yet');
      info(`renewing the token (${why})`);
      const verifier = api.generatePKCECodeVerifier(128);
      const state = randomHex();
      const query = new URLSearchParams({
        client_id: CLIENT_ID,
        redirect_uri: REDIRECT_URI,
        response_type: 'code',
        code_challenge: await api.computePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        login_hint: me.id
      });
      const response = await fetch(`/oauth/authorize?${query}`, { credentials: 'same-origin' });
      const back = new URL(response.url);
      const code = back.searchParams.get('code');
      if (!code || back.searchParams.get('state') !== state) {
        throw new Error(`the login answered HTTP ${response.status} without a code`);
      }
      const auth = await api.authorizePKCEGrant(CLIENT_ID, verifier, code, REDIRECT_URI);
      if (streaming) streaming.setAccessToken(auth.accessToken);
      info('token renewed');
      scheduleRenewal(auth.tokenExpiryTime);
    })();
    renewing.then(() => { renewing = null; }, () => { renewing = null; });
    return renewing;
  }

  /** An API call; on 401 the token is renewed and the call made once more. */
  async function call (what, send) {
    try {
      return await send();
    } catch (error) {
      if (!error || error.status !== 401) throw error;
      info(`${what}: HTTP 401, the token is renewed first`);
      await renew(`401 on ${what}`);
      return send();
    }
  }

  // ------------------------------------------------------------------ calls
  const ENDED = ['disconnected', 'terminated'];

  /** The last agent participant of this user (the synthetic agent's agent_participant). */
  function myParticipant (conversation) {
    let found = null;
    for (const p of conversation.participants || []) {
      const uid = p.userId || (p.user && p.user.id);
      if (p.purpose === 'agent' && uid === me.id) found = p;
    }
    return found;
  }

  /** State, after-call work and wrap-up of a participant (store.participant_view). */
  function view (participant) {
    const call = (participant.calls && participant.calls[0]) || participant;
    const acw = call.afterCallWork;
    const wrapup = participant.wrapup || call.wrapup;
    return {
      participantId: participant.id || '',
      communicationId: call !== participant ? call.id || '' : '',
      state: call.state || participant.state || '',
      acwState: acw && typeof acw === 'object' ? acw.state || '' : '',
      wrapupCode: wrapup && typeof wrapup === 'object' ? wrapup.code || '' : ''
    };
  }

  function renderCallState () {
    const open = [...calls.values()].filter((c) => !c.done);
    let state = 'none';
    if (open.some((c) => c.state === 'connected')) state = 'connected';
    else if (open.some((c) => c.state === 'alerting')) state = 'alerting';
    else if (open.some((c) => ENDED.includes(c.state) && c.wrapping)) state = 'wrapup';
    if (el('call-state').textContent !== state) info(`call state: ${state}`);
    el('call-state').textContent = state;
  }

  function onConversation (body, source) {
    if (!me || !body || typeof body.id !== 'string') return;
    const participant = myParticipant(body);
    if (!participant) return;
    const v = view(participant);
    let item = calls.get(body.id);
    if (!item || (item.participantId && item.participantId !== v.participantId)) {
      item = { id: body.id, participantId: '', communicationId: '', state: '', answered: false, answering: false, wrapping: false, wrappedUp: false, done: false };
      calls.set(body.id, item);
    }
    const previous = item.state;
    item.participantId = v.participantId;
    item.communicationId = v.communicationId || item.communicationId;
    item.state = v.state;
    if (v.wrapupCode) item.wrappedUp = true;
    if (v.state === 'alerting' && previous !== 'alerting' && !item.answered && !item.answering) {
      info(`call ${body.id} alerting (${source})`);
      void answer(item);
    } else if (v.state === 'connected' && previous !== 'connected') {
      item.answered = true;
      info(`call ${body.id} connected`);
    } else if (ENDED.includes(v.state) && !ENDED.includes(previous)) {
      info(`call ${body.id} ended (${source})`);
    }
    if (ENDED.includes(v.state)) {
      if (v.acwState === 'pending' && !item.wrappedUp) {
        if (!item.wrapping) void wrapUp(item);
      } else if (!item.wrapping) {
        item.done = true;
      }
    }
    for (const [id, c] of calls) if (c.done && calls.size > 20) calls.delete(id);
    renderCallState();
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function answer (item) {
    item.answering = true;
    try {
      await sleep(ANSWER_MS);
      if (item.state !== 'alerting') return;
      info(`answering call ${item.id}`);
      await call('answer', () => conversationsApi.patchConversationsCallParticipant(
        item.id, item.participantId, { state: 'connected' }));
      item.answered = true;
      info(`answered call ${item.id}`);
    } catch (error) {
      fail(`answering call ${item.id}`, error);
    } finally {
      item.answering = false;
    }
  }

  async function wrapUpCode () {
    if (wrapupCode) return wrapupCode;
    const codes = await call('wrap-up codes', () => routingApi.getRoutingWrapupcodes());
    const first = (codes.entities || []).find((c) => c && c.id);
    if (!first) throw new Error('no wrap-up code in GET /api/v2/routing/wrapupcodes');
    wrapupCode = first.id;
    return wrapupCode;
  }

  async function wrapUp (item) {
    item.wrapping = true;
    renderCallState();
    const started = Date.now();
    try {
      const code = await wrapUpCode();
      info(`wrapping up call ${item.id} with code ${code}`);
      await sleep(WRAPUP_MS);
      if (!item.communicationId) {
        const conversation = await call('conversation', () => conversationsApi.getConversation(item.id));
        const participant = myParticipant(conversation);
        item.communicationId = participant ? view(participant).communicationId : '';
      }
      if (item.wrappedUp) {
        info(`call ${item.id} already wrapped up on the server`);
      } else {
        const body = { code, durationSeconds: Math.round((Date.now() - started) / 1000) };
        await call('wrap-up', () => conversationsApi.postConversationsCallParticipantCommunicationWrapup(
          item.id, item.participantId, item.communicationId, { body }));
        item.wrappedUp = true;
        info(`wrap-up submitted for call ${item.id}`);
      }
    } catch (error) {
      fail(`wrap-up of call ${item.id}`, error);
    } finally {
      item.wrapping = false;
      item.done = true;
      renderCallState();
    }
  }

  // ------------------------------------------------------------------ presence
  async function readState (why) {
    const user = await call('users/me', () => usersApi.getUsersMe({ expand: ['presence', 'routingStatus'] }));
    setPresence(user.presence && user.presence.presenceDefinition && user.presence.presenceDefinition.systemPresence);
    setRouting(user.routingStatus && user.routingStatus.status);
    info(`state read (${why})`);
    return user;
  }

  async function goOnQueue () {
    const definitions = await call('presence definitions', () => presenceApi.getPresenceDefinitions0());
    const normalise = (name) => String(name || '').replace(/[\s_-]/g, '').toLowerCase();
    const onQueue = (definitions.entities || []).find(
      (d) => d && normalise(d.systemPresence) === 'onqueue' && (d.type || 'System') === 'System');
    if (!onQueue) throw new Error('no On Queue definition in GET /api/v2/presence/definitions');
    info('going On Queue');
    const presence = await call('On Queue', () => presenceApi.patchUserPresencesPurecloud(
      me.id, { presenceDefinition: { id: onQueue.id } }));
    setPresence((presence.presenceDefinition && presence.presenceDefinition.systemPresence) || 'On Queue');
  }

  // ------------------------------------------------------------------ streaming
  const RESUBSCRIBE_MS = 1000;

  // The user's active calls (GET /api/v2/conversations): a call routed before the page's
  // subscription, or while it was cut off, sent its event to nobody.
  function readMyCalls (why) {
    return call('my conversations', () => conversationsApi.getConversations())
      .then((listing) => {
        for (const body of (listing && listing.entities) || []) onConversation(body, why);
      })
      .catch((error) => fail(`reading the active calls (${why})`, error));
  }

  function reread (why) {
    readState(why).catch((error) => fail('reading the state after a reconnect', error));
    void readMyCalls(why);
    for (const item of calls.values()) {
      if (item.done) continue;
      call('conversation', () => conversationsApi.getConversation(item.id))
        .then((body) => onConversation(body, 'reread'))
        .catch((error) => fail(`reading call ${item.id} after a reconnect`, error));
    }
  }

  function streamingLogger () {
    // The library's own log lines, message text only (its details may carry connection data).
    const line = (level) => (message) => {
      const text = message instanceof Error ? message.message : String(message);
      console[level](text.replace(/Bearer\s+\S+/gi, 'Bearer <hidden>'));
    };
    return { log: line('info'), debug: () => {}, info: line('info'), warn: line('warn'), error: line('error') };
  }

  async function connectStreaming (authToken) {
    streaming = new StreamingClient({
      host: window.location.origin.replace(/^http/, 'ws'),
      apiHost: window.location.origin,
      authToken,
      appName: 'chaosgenesys-reference-desktop',
      optOutOfWebrtcStatsTelemetry: true,
      logLevel: 'info',
      logger: streamingLogger()
    });
    streaming.on('connected', () => {
      setConnection('connected');
      if (connectedOnce) {
        // The library reconnected by itself; what was missed meanwhile is read back, now and
        // once more after RESUBSCRIBE_MS: after a hard reconnect (a new channel) the library
        // resubscribes only after 'connected' (debounced 100 ms), and an event published in
        // between never reaches the page.
        reread('reconnected');
        setTimeout(() => reread('reconnected, subscriptions renewed'), RESUBSCRIBE_MS);
      }
      connectedOnce = true;
    });
    streaming.on('disconnected', (event) => {
      setConnection(event && event.reconnecting ? 'reconnecting' : 'disconnected');
    });
    const topics = ['presence', 'routingStatus', 'conversations'].map((t) => `v2.users.${me.id}.${t}`);
    const handlers = {
      presence: (body) => setPresence(body.presenceDefinition && body.presenceDefinition.systemPresence),
      routingStatus: (body) => setRouting(body.routingStatus && body.routingStatus.status),
      conversations: (body) => onConversation(body, 'event')
    };
    info('connecting the streaming client');
    await streaming.connect({ keepTryingOnFailure: true });
    await Promise.all(topics.map((topic) => {
      const kind = topic.split('.').pop();
      return streaming.notifications.subscribe(topic, (envelope) => {
        const body = envelope && envelope.eventBody;
        if (body) handlers[kind](body);
      });
    }));
    info(`subscribed to ${topics.join(', ')}`);
    await readMyCalls('subscribed');
  }

  // 19.x gives up by rejecting the promise of its own background reconnect (invalid_token)
  window.addEventListener('unhandledrejection', (event) => {
    const reason = event.reason;
    if (reason && typeof reason.type === 'string') {
      console.error(TAG, `the streaming client gave up reconnecting: ${describe(reason)}`);
      setConnection('disconnected');
      event.preventDefault();
    }
  });

  // ------------------------------------------------------------------ login and start
  async function start () {
    if (!returning) sessionStorage.setItem(STATE_KEY, randomHex());
    const expected = sessionStorage.getItem(STATE_KEY) || '';
    const options = { state: expected };
    if (hint) options.login_hint = hint;
    info(hint ? `logging in ${hint} (authorization code + PKCE)` : 'logging in (authorization code + PKCE)');
    // the first load navigates to /oauth/authorize (this promise never settles); the second,
    // at the redirect URI, exchanges the code with the verifier the SDK kept in sessionStorage
    const auth = await api.loginPKCEGrant(CLIENT_ID, REDIRECT_URI, options);
    if (!expected || auth.state !== expected) {
      throw new Error('the login came back with another state than the page sent');
    }
    sessionStorage.removeItem(STATE_KEY);
    const user = await readState('login');
    me = { id: user.id, name: user.name || '', email: user.email || '' };
    const label = el('user');
    label.textContent = me.email ? `${me.name} <${me.email}>` : me.name || me.id;
    label.dataset.userId = me.id;
    label.dataset.email = me.email;
    info(`logged in as ${me.id}`);
    // the page's own query back in the address bar: a reload logs the same user in again
    params.set('user', hint || me.email || me.id);
    window.history.replaceState(null, document.title, `/desktop/?${params.toString()}`);
    scheduleRenewal(auth.tokenExpiryTime);
    await connectStreaming(auth.accessToken);
    await goOnQueue();
  }

  start().catch((error) => fatal(`the desktop could not start: ${describe(error)}`));
})();
