'use strict';
/**
 * The official Genesys Cloud JavaScript SDK (purecloud-platform-client-v2, pinned in the root
 * package.json) logs a user in the way a browser app does, against a running sandbox, with its
 * own code: loginPKCEGrant (authorization code + PKCE, S256) and loginImplicitGrant. Run by
 * tests/sandbox/test_js_sdk_browser_login.py.
 *
 * A browser login is two page loads. On the first, the SDK finds no token, builds the
 * /oauth/authorize URL (setGateway's host: what login.<env> is in production) and calls
 * window.location.replace(url); the browser follows it, and the sandbox (given login_hint)
 * answers at once with a 302 to the redirect URI carrying the code (?code=…) or the token
 * (#access_token=…). On the second page load, at the redirect URI, the SDK reads them from
 * window.location, exchanges the code with its verifier (PKCE), and checks the token with
 * GET /api/v2/tokens/me. This script plays the browser: it gives the SDK the few globals it
 * reads (window.location, history, document) and follows the SDK's navigation with fetch.
 * Then the SDK reads users/me and tokens/me with the user's token; the bodies are checked
 * against the SDK's own typings (typings.cjs).
 *
 * Arguments: SANDBOX_URL CLIENT_ID REDIRECT_URI USER (id or email for login_hint).
 * Output: one line per check ("ok <name>" or "FAIL <name>: <why>"), a line
 * "user <flow> <id>" per login, and a last line "summary <passed> <failed>"; exit status 1 when
 * any check failed. No token is printed.
 */

const assert = require('assert/strict');
const platformClient = require('purecloud-platform-client-v2');
const typingsModule = require('./typings.cjs');

const [SANDBOX_URL, CLIENT_ID, REDIRECT_URI, USER] = process.argv.slice(2);
if (!USER) {
	console.error('usage: sdk_browser_login.cjs SANDBOX_URL CLIENT_ID REDIRECT_URI USER');
	process.exit(2);
}
const SANDBOX = new URL(SANDBOX_URL);
const REDIRECT = new URL(REDIRECT_URI);
const typings = typingsModule.load();

const client = platformClient.ApiClient.instance;
client.setGateway({
	host: SANDBOX.hostname,
	protocol: SANDBOX.protocol.replace(':', ''),
	port: Number(SANDBOX.port),
});
client.setReturnExtendedResponses(true);
const usersApi = new platformClient.UsersApi();
const tokensApi = new platformClient.TokensApi();

// The verifier is made before the browser globals exist (the SDK then uses Node's crypto); a
// browser app would keep it in sessionStorage between the two page loads.
const VERIFIER = client.generatePKCECodeVerifier(128);

/** The browser around the SDK: one page at a time, and where it was told to go. */
const browser = {
	navigatedTo: null,
	load(url) {
		const page = new URL(url);
		this.navigatedTo = null;
		global.window = {
			location: {
				href: page.href,
				origin: page.origin,
				pathname: page.pathname,
				search: page.search,
				hash: page.hash,
				replace: (target) => {
					this.navigatedTo = target;
				},
			},
			crypto: require('crypto').webcrypto,
			addEventListener() {},
			removeEventListener() {},
		};
		global.history = { replaceState() {} };
		global.document = { title: '' };
	},
	unload() {
		delete global.window;
		delete global.history;
		delete global.document;
	},
	/** Wait for the SDK to navigate away (its login promise stays pending meanwhile). */
	async navigation(timeoutMs = 10000) {
		const deadline = Date.now() + timeoutMs;
		while (this.navigatedTo === null) {
			if (Date.now() > deadline) throw new Error('the SDK never navigated to the login page');
			await new Promise((resolve) => setTimeout(resolve, 10));
		}
		return this.navigatedTo;
	},
	/** Follow the navigation as a browser does: the login page's redirect, not followed. */
	async follow(url) {
		const response = await fetch(url, { redirect: 'manual' });
		assert.equal(response.status, 302, `the login page answered ${response.status}`);
		const location = response.headers.get('location');
		assert.ok(location, 'the login page redirected nowhere');
		return location;
	},
};

let passed = 0;
let failed = 0;
async function check(name, body) {
	try {
		await body();
		passed += 1;
		console.log(`ok ${name}`);
	} catch (error) {
		failed += 1;
		const why = error && error.message ? error.message : String(error);
		console.log(`FAIL ${name}: ${why.replace(/\s+/g, ' ').slice(0, 600)}`);
	}
}

/** An SDK call whose body must fit the type its typings promise. */
async function typed(instance, klass, method, ...args) {
	const type = typings.methods.get(`${klass}.${method}`);
	assert.ok(type, `the typings declare no ${klass}.${method}`);
	let response;
	try {
		response = await instance[method](...args);
	} catch (error) {
		const status = error && typeof error.status === 'number' ? error.status : '?';
		throw new Error(`${klass}.${method}: HTTP ${status} ${JSON.stringify(error && error.body)}`);
	}
	const problems = typingsModule.check(typings, response.body, type);
	assert.deepEqual(problems, [], `${klass}.${method} -> ${type}: ${problems.join('; ')}`);
	return response.body;
}

/** Both page loads of one login; returns the SDK's authData. */
async function login(flow) {
	const state = `state-${flow}-${Date.now()}`;
	const options = { state, login_hint: USER };
	const start = () =>
		flow === 'pkce'
			? client.loginPKCEGrant(CLIENT_ID, REDIRECT_URI, options, VERIFIER)
			: client.loginImplicitGrant(CLIENT_ID, REDIRECT_URI, options);

	client.setAccessToken(undefined);
	browser.load(`${REDIRECT.origin}/app`);
	const pending = start();
	pending.catch(() => {}); // the first page load never settles: the page goes away
	const authorize = new URL(await browser.navigation());
	assert.equal(authorize.origin, SANDBOX.origin, 'the SDK went to another login host');
	assert.equal(authorize.pathname, '/oauth/authorize');
	const query = authorize.searchParams;
	assert.equal(query.get('client_id'), CLIENT_ID);
	assert.equal(query.get('redirect_uri'), REDIRECT_URI);
	assert.equal(query.get('login_hint'), USER);
	assert.equal(query.get('state'), state);
	if (flow === 'pkce') {
		assert.equal(query.get('response_type'), 'code');
		assert.equal(query.get('code_challenge_method'), 'S256');
		assert.equal(query.get('code_challenge'), await client.computePKCECodeChallenge(VERIFIER));
	} else {
		assert.equal(query.get('response_type'), 'token');
	}

	const back = new URL(await browser.follow(authorize.href));
	assert.equal(`${back.origin}${back.pathname}`, REDIRECT_URI, 'redirected elsewhere');
	if (flow === 'pkce') {
		assert.ok(back.searchParams.get('code'), 'no code in the redirect');
		assert.equal(back.searchParams.get('state'), state);
	} else {
		const fragment = new URLSearchParams(back.hash.slice(1));
		assert.ok(fragment.get('access_token'), 'no access_token in the redirect');
		assert.equal(fragment.get('state'), state);
	}

	browser.load(back.href); // the second page load, at the redirect URI
	const authData = await start();
	browser.unload();
	assert.ok(authData.accessToken, 'the SDK holds no token');
	assert.equal(authData.state, state);
	assert.ok(authData.tokenExpiryTime > Date.now(), 'the token expiry is not in the future');
	return authData;
}

async function main() {
	const expected = { pkce: 'CODE', implicit: 'TOKEN' };
	for (const flow of ['pkce', 'implicit']) {
		let me = null;
		await check(`${flow}: the SDK logs the user in`, async () => {
			await login(flow);
		});
		await check(`${flow}: users/me is the user, a UserMe`, async () => {
			me = await typed(usersApi, 'UsersApi', 'getUsersMe', {
				expand: ['presence', 'routingStatus'],
			});
			const wanted = USER.toLowerCase();
			assert.ok(
				me.id === USER || (me.email || '').toLowerCase() === wanted,
				`users/me is ${me.id}, not ${USER}`,
			);
			assert.match(me.chat.jabberId, /^[^@]+@[^@]+$/);
			console.log(`user ${flow} ${me.id}`);
		});
		await check(`${flow}: tokens/me names the user grant`, async () => {
			const info = await typed(tokensApi, 'TokensApi', 'getTokensMe');
			assert.equal(info.OAuthClient.id, CLIENT_ID);
			assert.equal(info.OAuthClient.authorizedGrantType, expected[flow]);
		});
	}
	console.log(`summary ${passed} ${failed}`);
	process.exit(failed ? 1 : 0);
}

main().catch((error) => {
	console.log(`FAIL unexpected: ${error && error.message ? error.message : error}`);
	console.log(`summary ${passed} ${failed + 1}`);
	process.exit(1);
});
