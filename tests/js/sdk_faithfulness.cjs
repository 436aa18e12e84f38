'use strict';
/**
 * The official Genesys Cloud JavaScript SDK (purecloud-platform-client-v2, pinned in the root
 * package.json) as an independent client of a running sandbox, beside the Python SDK's
 * tests/sandbox/test_sdk_faithfulness.py. Run by tests/sandbox/test_js_sdk_faithfulness.py.
 *
 * The SDK is pointed at the sandbox with ApiClient.setGateway (setEnvironment always builds
 * https://api.<env>), logs in with client credentials, and makes the calls an integration
 * makes. Every response body (and every notification event body) is checked against the SDK's
 * own typings (typings.cjs): no field the model does not have, no required field missing, JSON
 * types as declared. The values that matter are asserted against the seed.
 *
 * Environment: SANDBOX_URL (http://127.0.0.1:port), SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET,
 * SANDBOX_AGENT_1, SANDBOX_AGENT_2, SANDBOX_AGENT_3, SANDBOX_QUEUE, SANDBOX_WRAPUP_CODE.
 * Output: one line per check ("ok <name>" or "FAIL <name>: <why>") and a last line
 * "summary <passed> <failed>"; the exit status is 1 when any check failed. No token or secret
 * is printed.
 */

const assert = require('assert/strict');
const WebSocket = require('ws'); // pinned beside the SDK: Debian's Node 18 has no global WebSocket
const platformClient = require('purecloud-platform-client-v2');
const typingsModule = require('./typings.cjs');

const env = (name) => {
	const value = process.env[name];
	if (!value) throw new Error(`${name} is not set`);
	return value;
};
const URL_ = new URL(env('SANDBOX_URL'));
const CLIENT_ID = env('SANDBOX_CLIENT_ID');
const AGENT_1 = env('SANDBOX_AGENT_1');
const AGENT_2 = env('SANDBOX_AGENT_2');
const AGENT_3 = env('SANDBOX_AGENT_3');
const QUEUE = env('SANDBOX_QUEUE');
const WRAPUP_CODE = env('SANDBOX_WRAPUP_CODE');
const UNKNOWN_USER = '00000000-0000-4000-8000-00000000dead';

const typings = typingsModule.load();
const client = platformClient.ApiClient.instance;
client.setGateway({
	host: URL_.hostname,
	protocol: URL_.protocol.replace(':', ''),
	port: Number(URL_.port),
});
client.setReturnExtendedResponses(true); // status, headers and body of every call

const api = {
	users: new platformClient.UsersApi(),
	presence: new platformClient.PresenceApi(),
	routing: new platformClient.RoutingApi(),
	conversations: new platformClient.ConversationsApi(),
	notifications: new platformClient.NotificationsApi(),
	tokens: new platformClient.TokensApi(),
};
const apiClassOf = new Map(Object.values(api).map((instance) => [instance, instance.constructor.name]));

/** Call `method` of an SDK API object; assert the body fits the type the typings promise. */
async function call(instance, method, ...args) {
	const klass = apiClassOf.get(instance);
	const type = typings.methods.get(`${klass}.${method}`);
	assert.ok(type, `the typings declare no ${klass}.${method}`);
	let response;
	try {
		response = await instance[method](...args);
	} catch (error) {
		throw new Error(`${klass}.${method}: ${describe(error)}`);
	}
	const problems = typingsModule.check(typings, response.body, type);
	assert.deepEqual(problems, [], `${klass}.${method} -> ${type}: ${problems.join('; ')}`);
	return response.body;
}

/** An error or a rejected extended response, without its request (it holds the token). */
function describe(error) {
	if (error && typeof error.status === 'number') {
		return `HTTP ${error.status} ${JSON.stringify(error.body)}`;
	}
	return error && error.message ? error.message : String(error);
}

/** Call an SDK method that must fail; return the rejected extended response. */
async function refused(instance, method, ...args) {
	try {
		await instance[method](...args);
	} catch (error) {
		if (error && typeof error.status === 'number') return error;
		throw error;
	}
	assert.fail(`${apiClassOf.get(instance)}.${method} succeeded, a refusal was expected`);
}

function checkErrorBody(error, status, code) {
	assert.equal(error.status, status);
	assert.deepEqual(typingsModule.check(typings, error.body, 'Models.ErrorBody'), []);
	assert.equal(error.body.status, status);
	if (code) assert.equal(error.body.code, code);
	assert.ok(error.body.message);
}

/** The sandbox's admin surface (not part of the platform: plain fetch, no SDK). */
async function admin(method, path, body) {
	const response = await fetch(`${URL_.origin}/sandbox/v1${path}`, {
		method,
		headers: { 'Content-Type': 'application/json' },
		body: body === undefined ? undefined : JSON.stringify(body),
	});
	const text = await response.text();
	assert.ok(response.ok, `admin ${method} ${path}: ${response.status} ${text}`);
	return text ? JSON.parse(text) : null;
}

/** A WebSocket on a channel, collecting event messages. */
function openSocket(connectUri) {
	return new Promise((resolve, reject) => {
		const socket = new WebSocket(connectUri);
		const messages = [];
		const waiters = [];
		socket.on('message', (data) => {
			messages.push(JSON.parse(data.toString('utf8')));
			for (const waiter of waiters.splice(0)) waiter();
		});
		socket.once('open', () => resolve({
			socket,
			messages,
			async until(predicate, timeoutMs = 5000) {
				const deadline = Date.now() + timeoutMs;
				for (;;) {
					const found = messages.find(predicate);
					if (found) return found;
					const left = deadline - Date.now();
					if (left <= 0) throw new Error('no matching notification within ' + timeoutMs + ' ms');
					await new Promise((wake) => {
						const timer = setTimeout(wake, left);
						waiters.push(() => { clearTimeout(timer); wake(); });
					});
				}
			},
			close() { socket.close(); },
		}));
		socket.once('error', (error) => reject(new Error(`WebSocket ${connectUri}: ${error.message}`)));
	});
}

const checks = [];
const check = (name, fn) => checks.push({ name, fn });

// ---------------------------------------------------------------- tokens and users

check('tokens/me is a TokenInfo of our client', async () => {
	const info = await call(api.tokens, 'getTokensMe');
	assert.ok(info.organization.id);
	assert.equal(info.OAuthClient.id, CLIENT_ID);
});

check('a user with expands is a User', async () => {
	const user = await call(api.users, 'getUser', AGENT_1, {
		expand: ['presence', 'routingStatus', 'conversationSummary'],
	});
	assert.equal(user.id, AGENT_1);
	assert.equal(user.name, 'Test Agent 1');
	assert.equal(user.state, 'active');
	assert.equal(user.presence.presenceDefinition.systemPresence, 'On Queue');
	assert.equal(user.presence.source, 'PURECLOUD');
	assert.equal(user.routingStatus.status, 'IDLE');
	assert.equal(user.routingStatus.userId, AGENT_1);
	assert.equal(user.conversationSummary.call.contactCenter.active, 0);
	assert.equal(user.selfUri, `/api/v2/users/${AGENT_1}`);
});

check('users by id are a UserEntityListing', async () => {
	const users = await call(api.users, 'getUsers', {
		id: [AGENT_1, AGENT_2, AGENT_3], expand: ['presence', 'routingStatus'],
	});
	const byId = new Map(users.entities.map((u) => [u.id, u]));
	assert.deepEqual([...byId.keys()].sort(), [AGENT_1, AGENT_2, AGENT_3].sort());
	assert.equal(byId.get(AGENT_3).presence.presenceDefinition.systemPresence, 'Available');
	assert.equal(byId.get(AGENT_3).routingStatus.status, 'OFF_QUEUE');
});

check('users/me needs a user context: 400 ErrorBody', async () => {
	const error = await refused(api.users, 'getUsersMe');
	checkErrorBody(error, 400, 'bad.request');
	assert.match(error.body.message, /^This request requires a user context\./);
});

check('routing/queues/me needs a user context: 400 ErrorBody', async () => {
	const error = await refused(api.routing, 'getRoutingQueuesMe');
	checkErrorBody(error, 400, 'bad.request');
	assert.match(error.body.message, /^This request requires a user context\./);
});

check('an unknown user is a 404 ErrorBody', async () => {
	checkErrorBody(await refused(api.users, 'getUser', UNKNOWN_USER), 404, 'not.found');
});

// ---------------------------------------------------------------- presence and routing

check('systempresences are SystemPresence items', async () => {
	const presences = await call(api.presence, 'getSystempresences');
	assert.deepEqual(presences.map((p) => p.name).sort(), [
		'Available', 'Away', 'Break', 'Busy', 'Idle', 'Meal', 'Meeting', 'Offline', 'On Queue',
		'Training',
	]);
	for (const p of presences) assert.equal(p.selfUri, `/api/v2/systempresences/${p.id}`);
});

check('a presence change is read back, and its event is a PresenceEventUserPresence', async () => {
	const presence = await call(api.presence, 'getUserPresencesPurecloud', AGENT_1);
	assert.equal(presence.presenceDefinition.systemPresence, 'On Queue');
	const definitions = await call(api.presence, 'getPresenceDefinitions0'); // /presence/definitions
	const system = new Map(definitions.entities.filter((d) => d.type === 'System')
		.map((d) => [d.systemPresence, d]));
	for (const name of ['Available', 'Away', 'Busy', 'Offline', 'Idle', 'OnQueue', 'Meal', 'Break']) {
		assert.ok(system.has(name), `no System definition for ${name}`);
	}
	assert.equal(system.get('OnQueue').id, presence.presenceDefinition.id);

	const channel = await call(api.notifications, 'postNotificationsChannels');
	const topics = ['presence', 'routingStatus', 'activity'].map((t) => ({ id: `v2.users.${AGENT_1}.${t}` }));
	await call(api.notifications, 'putNotificationsChannelSubscriptions', channel.id, topics);
	const ws = await openSocket(channel.connectUri);
	try {
		const busy = system.get('Busy').id;
		const changed = await call(api.presence, 'patchUserPresencesPurecloud', AGENT_1, {
			presenceDefinition: { id: busy },
		});
		assert.equal(changed.presenceDefinition.systemPresence, 'Busy');
		const readBack = await call(api.presence, 'getUserPresencesPurecloud', AGENT_1);
		assert.equal(readBack.presenceDefinition.id, busy);

		const event = await ws.until((m) => m.topicName === `v2.users.${AGENT_1}.presence`);
		assert.deepEqual(typingsModule.check(typings, event.eventBody, 'Models.PresenceEventUserPresence'), []);
		assert.equal(event.eventBody.presenceDefinition.id, busy);
		const routing = await ws.until((m) => m.topicName === `v2.users.${AGENT_1}.routingStatus`);
		assert.deepEqual(typingsModule.check(typings, routing.eventBody, 'Models.UserRoutingStatusUserRoutingStatus'), []);
		assert.equal(routing.eventBody.routingStatus.status, 'OFF_QUEUE');
		const activity = await ws.until((m) => m.topicName === `v2.users.${AGENT_1}.activity`);
		assert.deepEqual(typingsModule.check(typings, activity.eventBody, 'Models.AgentActivityChangedTopicAgentActivity'), []);
	} finally {
		ws.close();
		await call(api.presence, 'patchUserPresencesPurecloud', AGENT_1, {
			presenceDefinition: { id: system.get('OnQueue').id },
		});
	}
});

check('the older presencedefinitions are an OrganizationPresenceEntityListing', async () => {
	const definitions = await call(api.presence, 'getPresencedefinitions');
	const names = definitions.entities.map((d) => d.systemPresence);
	assert.ok(names.includes('On Queue') && names.includes('Available'), names.join(', '));
});

check('bulk presences are UcUserPresence items', async () => {
	const presences = await call(api.presence, 'getUsersPresencesPurecloudBulk', {
		id: [AGENT_1, AGENT_2, AGENT_3],
	});
	const byUser = Object.fromEntries(presences.map((p) => [p.userId, p.presenceDefinition.systemPresence]));
	assert.deepEqual(byUser, { [AGENT_1]: 'On Queue', [AGENT_2]: 'On Queue', [AGENT_3]: 'Available' });
});

check('a routing status is a RoutingStatus', async () => {
	const status = await call(api.users, 'getUserRoutingstatus', AGENT_1);
	assert.equal(status.userId, AGENT_1);
	assert.equal(status.status, 'IDLE');
	assert.ok(status.startTime);
	assert.equal((await call(api.users, 'getUserRoutingstatus', AGENT_3)).status, 'OFF_QUEUE');
});

check('queue members are a QueueMemberEntityListing', async () => {
	const members = await call(api.routing, 'getRoutingQueueMembers', QUEUE);
	const byId = new Map(members.entities.map((m) => [m.id, m]));
	assert.deepEqual([...byId.keys()].sort(), [AGENT_1, AGENT_2].sort());
	assert.equal(byId.get(AGENT_1).name, 'Test Agent 1');
	assert.equal(byId.get(AGENT_1).routingStatus.status, 'IDLE');
});

check('wrap-up codes are a WrapupCodeEntityListing', async () => {
	const codes = await call(api.routing, 'getRoutingWrapupcodes');
	assert.ok(codes.entities.some((c) => c.id === WRAPUP_CODE));
	for (const code of codes.entities) assert.ok(code.id && code.name);
});

// ---------------------------------------------------------------- conversations

check('a routed call is a Conversation and a CallConversation', async () => {
	const { id } = await admin('POST', '/calls', { queue_id: QUEUE });
	const conversation = await call(api.conversations, 'getConversation', id);
	assert.equal(conversation.id, id);
	const agents = conversation.participants.filter((p) => p.purpose === 'agent');
	assert.equal(agents.length, 1);
	assert.ok([AGENT_1, AGENT_2].includes(agents[0].userId));
	assert.equal(agents[0].queueId, QUEUE);
	assert.equal(agents[0].calls[0].state, 'alerting');
	const callConversation = await call(api.conversations, 'getConversationsCall', id);
	const callAgent = callConversation.participants.find((p) => p.purpose === 'agent');
	assert.equal(callAgent.id, agents[0].id);
	assert.equal(callAgent.state, 'alerting');
	assert.equal(callAgent.user.id, agents[0].userId);
	assert.equal(callAgent.queue.id, QUEUE);
	await call(api.conversations, 'getConversationParticipantWrapupcodes', id, agents[0].id);
	await admin('POST', `/conversations/${id}/disconnect`);
});

check('conversation events are the event models (user and queue topics)', async () => {
	const models = {
		[`v2.users.${AGENT_1}.conversations`]: 'Models.ConversationEventTopicConversation',
		[`v2.routing.queues.${QUEUE}.conversations`]: 'Models.QueueConversationEventTopicConversation',
	};
	const channel = await call(api.notifications, 'postNotificationsChannels');
	await call(api.notifications, 'putNotificationsChannelSubscriptions', channel.id,
		Object.keys(models).map((id) => ({ id })));
	const ws = await openSocket(channel.connectUri);
	try {
		const { id } = await admin('POST', '/calls', { queue_id: QUEUE, user_id: AGENT_1 });
		const conversation = await call(api.conversations, 'getConversation', id);
		const agent = conversation.participants.find((p) => p.purpose === 'agent' && p.userId === AGENT_1);
		await call(api.conversations, 'patchConversationsCallParticipant', id, agent.id, { state: 'connected' });
		await admin('POST', `/conversations/${id}/disconnect`);
		await call(api.conversations, 'postConversationsCallParticipantCommunicationWrapup',
			id, agent.id, agent.calls[0].id, { body: { code: WRAPUP_CODE, notes: 'done' } });
		const mine = (m) => (m.eventBody.participants || []).filter((p) => p.userId === AGENT_1).pop();
		await ws.until((m) => m.topicName in models && m.eventBody.id === id && mine(m) && mine(m).wrapup);
		const events = ws.messages.filter((m) => m.topicName in models && m.eventBody.id === id);
		assert.deepEqual([...new Set(events.map((m) => m.topicName))].sort(), Object.keys(models).sort());
		for (const event of events) {
			const problems = typingsModule.check(typings, event.eventBody, models[event.topicName]);
			assert.deepEqual(problems, [], `${event.topicName}: ${problems.join('; ')}`);
		}
		const userEvents = events.filter((m) => m.topicName === `v2.users.${AGENT_1}.conversations`);
		const states = userEvents.map((m) => mine(m).calls[0].state);
		assert.equal(states[0], 'alerting');
		assert.ok(states.includes('connected'));
		assert.equal(states[states.length - 1], 'disconnected');
		const last = mine(userEvents[userEvents.length - 1]);
		assert.equal(last.wrapup.code, WRAPUP_CODE);
		assert.equal(last.calls[0].afterCallWork.state, 'complete');
	} finally {
		ws.close();
	}
});

// ---------------------------------------------------------------- notification channels

check('a channel and its subscriptions are Channel and ChannelTopicEntityListing', async () => {
	const channel = await call(api.notifications, 'postNotificationsChannels');
	assert.equal(channel.connectUri, `ws://${URL_.host}/channels/${channel.id}`);
	assert.ok(channel.expires);
	const topics = [
		{ id: `v2.users.${AGENT_1}.presence` },
		{ id: `v2.users.${AGENT_1}?presence&routingStatus` },
		{ id: 'v2.nothing.like.this' },
	];
	const result = await call(api.notifications, 'postNotificationsChannelSubscriptions', channel.id, topics);
	assert.deepEqual(Object.fromEntries(result.entities.map((t) => [t.id, t.state])), {
		[topics[0].id]: 'Permitted', [topics[1].id]: 'Permitted', [topics[2].id]: 'Rejected',
	});
	const listed = await call(api.notifications, 'getNotificationsChannelSubscriptions', channel.id);
	assert.deepEqual(listed.entities.map((t) => t.id).sort(), [topics[0].id, topics[1].id].sort());
	const channels = await call(api.notifications, 'getNotificationsChannels');
	assert.ok(channels.entities.some((c) => c.id === channel.id));
	await call(api.notifications, 'headNotificationsChannel', channel.id);
	assert.equal((await refused(api.notifications, 'headNotificationsChannel', 'streaming-0-gone')).status, 404);
	await call(api.notifications, 'deleteNotificationsChannelSubscriptions', channel.id);
	assert.deepEqual((await call(api.notifications, 'getNotificationsChannelSubscriptions', channel.id)).entities, []);
});

// ---------------------------------------------------------------- run

async function main() {
	await client.loginClientCredentialsGrant(CLIENT_ID, env('SANDBOX_CLIENT_SECRET'));
	let failed = 0;
	for (const { name, fn } of checks) {
		try {
			await fn();
			console.log(`ok ${name}`);
		} catch (error) {
			failed += 1;
			console.log(`FAIL ${name}: ${describe(error).replace(/\s+/g, ' ').slice(0, 2000)}`);
		}
	}
	console.log(`summary ${checks.length - failed} ${failed}`);
	process.exitCode = failed ? 1 : 0;
}

main().catch((error) => {
	console.log(`FAIL setup: ${describe(error)}`);
	process.exitCode = 1;
});
