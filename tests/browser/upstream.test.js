// Signing in through upstream identity providers, in headless Chromium, with real
// providers: oidc-provider (a certified OpenID Provider, from npm) and a second instance
// of this service. A person signs up with imported claims and comes back straight in,
// links an upstream account to an existing one after a password sign-in (private_key_jwt
// and form_post), signs up through the second instance (client_secret_basic) whose
// sign-out then reaches this one by back-channel logout, signs a legacy Matrix client in
// through SSO, and a back-channel logout from oidc-provider ends that client's session
// here and at Synapse.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Provider from 'oidc-provider';
import { freePort, launchChromium, snapshot, startSynapse, waitForHealth } from './support.js';

const MAS_CLI = process.env.MAS_CLI;
const MAS_SERVER = process.env.MAS_SERVER;
const PASSWORD = 'correct horse battery staple';
const SECRET = randomBytes(24).toString('hex');
const REDIRECT = 'http://127.0.0.1:9/matrix-client';
// The providers as this service knows them.
const BASIC = '01JF0000000000000000BAS1C0'; // oidc-provider, client_secret_basic
const KEYJWT = '01JF00000000000000000KEYJW'; // oidc-provider, private_key_jwt, form_post
const SECOND = '01JF0000000000000000SEC0ND'; // the second instance of this service
const SECOND_CLIENT = '01JF00000000000000CA1ENT00'; // this service, as the second's client

let browser;
let base; // this service
let upstreamBase; // the second instance
let idpIssuer; // oidc-provider
let idp; // its HTTP server
let synapse; // { up, stop }
let synapseBase;
const servers = [];

function config(dir, name, text) {
  writeFileSync(join(dir, name), text);
  return ['-c', 'config.yaml', '-c', name];
}

// One MAS-style configuration for a server: generated secrets and a listener.
function serverEnv(dir, port, extra) {
  const env = {
    ...process.env,
    MAS_HTTP__PUBLIC_BASE: `http://127.0.0.1:${port}/`,
    MAS_HTTP__LISTENERS: `[{name="web",resources=[{name="discovery"},{name="oauth"},{name="human"},{name="compat"},{name="health"}],binds=[{address="127.0.0.1:${port}"}]}]`,
    MAS_DATABASE__URI: `sqlite://${join(dir, 'mas.db')}`,
    MAS_RATE_LIMITING__LOGIN__PER_IP__BURST: '100',
    MAS_MATRIX__KIND: 'synapse',
    MAS_MATRIX__HOMESERVER: 'localhost',
    MAS_MATRIX__SECRET: SECRET,
    ...extra,
  };
  delete env.MAS_CONFIG;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.yaml'), execFileSync(MAS_CLI, ['config', 'generate']));
  return env;
}

function startServer(dir, env, files, args = []) {
  const server = spawn(MAS_SERVER, [...files, ...args], { cwd: dir, env, stdio: ['ignore', 'ignore', 'inherit'] });
  servers.push(server);
  return server;
}

before(async () => {
  assert.ok(MAS_CLI && MAS_SERVER, 'set MAS_CLI and MAS_SERVER to the built binaries');
  const root = mkdtempSync(join(tmpdir(), 'mas-upstream-'));
  const [port, upstreamPort, idpPort] = [await freePort(), await freePort(), await freePort()];
  base = `http://127.0.0.1:${port}/`;
  // Another host name than this service's: browsers keep cookies per host, not per port,
  // and both services name their session cookie alike.
  upstreamBase = `http://localhost:${upstreamPort}/`;
  idpIssuer = `http://127.0.0.1:${idpPort}`;
  synapse = startSynapse(base, SECRET, join(root, 'synapse'));
  synapse.up.catch(() => {});

  // This service, with three providers.
  const dir = join(root, 'mas');
  const env = serverEnv(dir, port, {});
  const providers = config(dir, 'providers.yaml', `upstream_oauth2:
  providers:
    - id: ${BASIC}
      synapse_idp_id: oidc-idp
      issuer: ${idpIssuer}
      human_name: Example IdP
      brand_name: example
      client_id: mas-basic
      client_secret: basic-secret
      token_endpoint_auth_method: client_secret_basic
      scope: openid profile email
      fetch_userinfo: true
      on_backchannel_logout: logout_all
      claims_imports:
        localpart: {action: require}
        displayname: {action: suggest}
        email: {action: suggest}
        account_name: {template: '{{ user.preferred_username }} at the IdP'}
    - id: ${KEYJWT}
      issuer: ${idpIssuer}
      human_name: Example IdP (keys)
      client_id: mas-keys
      token_endpoint_auth_method: private_key_jwt
      token_endpoint_auth_signing_alg: RS256
      response_mode: form_post
      scope: openid profile
      fetch_userinfo: true
      claims_imports:
        localpart: {action: suggest}
    - id: ${SECOND}
      issuer: ${upstreamBase}
      human_name: Another MAS
      client_id: ${SECOND_CLIENT}
      client_secret: second-secret
      token_endpoint_auth_method: client_secret_basic
      scope: openid
      fetch_userinfo: true
      on_backchannel_logout: logout_browser_only
      claims_imports:
        localpart: {action: force}
`);
  execFileSync(MAS_CLI, [...providers, 'database', 'migrate'], { cwd: dir, env });
  synapseBase = (await synapse.up).base;
  env.MAS_MATRIX__ENDPOINT = `${synapseBase}/`;
  execFileSync(MAS_CLI, [...providers, 'manage', 'register-user', 'lena', '-p', PASSWORD, '-y'], { cwd: dir, env });
  startServer(dir, env, providers);

  // The second instance: its own database, one client (this service), one person. Its
  // worker is off: ursula exists there only, and Synapse learns of her from this service.
  const upstreamDir = join(root, 'upstream');
  const upstreamEnv = serverEnv(upstreamDir, upstreamPort, {
    MAS_MATRIX__ENDPOINT: `${synapseBase}/`,
    MAS_HTTP__PUBLIC_BASE: upstreamBase,
  });
  const client = config(upstreamDir, 'client.yaml', `clients:
  - client_id: ${SECOND_CLIENT}
    client_auth_method: client_secret_basic
    client_secret: second-secret
    client_name: The downstream service
    redirect_uris: [${base}upstream/callback/${SECOND}]
    backchannel_logout_uri: ${base}upstream/backchannel-logout/${SECOND}
`);
  execFileSync(MAS_CLI, [...client, 'database', 'migrate'], { cwd: upstreamDir, env: upstreamEnv });
  execFileSync(MAS_CLI, [...client, 'manage', 'register-user', 'ursula', '-p', PASSWORD, '-y'], { cwd: upstreamDir, env: upstreamEnv });
  startServer(upstreamDir, upstreamEnv, client, ['--no-worker']);

  await waitForHealth(`${base}health`);
  await waitForHealth(`${upstreamBase}health`);

  // oidc-provider, with this service as two clients: the second authenticates with this
  // service's own keys (private_key_jwt), published at its JWK set.
  const keys = await (await fetch(new URL('oauth2/keys.json', base))).json();
  const people = (sub) => ({
    accountId: sub,
    claims: async () => ({
      sub,
      preferred_username: sub,
      name: `${sub[0].toUpperCase()}${sub.slice(1)} Upstream`,
      email: `${sub}@idp.example`,
      email_verified: true,
    }),
  });
  const provider = new Provider(idpIssuer, {
    clients: [
      {
        client_id: 'mas-basic',
        client_secret: 'basic-secret',
        token_endpoint_auth_method: 'client_secret_basic',
        redirect_uris: [`${base}upstream/callback/${BASIC}`],
        backchannel_logout_uri: `${base}upstream/backchannel-logout/${BASIC}`,
        backchannel_logout_session_required: true,
      },
      {
        client_id: 'mas-keys',
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: 'RS256',
        jwks: { keys: keys.keys.filter((k) => k.kty === 'RSA') },
        redirect_uris: [`${base}upstream/callback/${KEYJWT}`],
      },
    ],
    findAccount: async (_ctx, sub) => people(sub),
    claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email', 'email_verified'] },
    features: {
      devInteractions: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    // Its outgoing requests refuse loopback addresses (SSRF protection); the back-channel
    // logout goes to this service on 127.0.0.1.
    fetch: (url, options) => {
      delete options.dispatcher;
      return fetch(url, options);
    },
  });
  // What the IdP could not deliver shows in the output of a failing run.
  provider.on('backchannel.error', (_ctx, error, client) => console.log(`# back-channel logout to ${client.clientId} failed: ${error.message}`));
  provider.on('server_error', (_ctx, error) => console.log(`# oidc-provider: ${error.stack}`));
  provider.on('end_session.error', (_ctx, error) => console.log(`# oidc-provider end_session: ${error.message}`));
  idp = provider.listen(idpPort);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  idp?.close();
  for (const server of servers) server.kill('SIGTERM');
  await synapse?.stop();
});

async function newPage() {
  const context = await browser.newContext();
  // oidc-provider's development pages load a web font; nothing here reaches the internet.
  await context.route('https://fonts.googleapis.com/**', (route) => route.abort());
  return { context, page: await context.newPage() };
}

// At oidc-provider's development pages: any login is accepted, then consent.
async function signInAtIdp(page, login) {
  assert.ok(page.url().startsWith(idpIssuer), page.url());
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'any password');
  await page.click('button[type=submit]');
  await page.click('button[type=submit]'); // Continue (consent)
  // Back here by a redirect, or by a form the provider's page posts (form_post).
  await page.waitForURL((url) => !url.toString().startsWith(idpIssuer));
}

// Signs in again through a provider that remembers the person (its consent page may
// show once more), ending at the account page.
async function comeBack(page, provider) {
  await page.click(`#provider-${provider}`);
  await page.waitForURL((url) => url.toString().startsWith(idpIssuer) || url.pathname === '/account/');
  if (page.url().startsWith(idpIssuer)) {
    await page.click('button[type=submit]');
    await page.waitForURL((url) => url.pathname === '/account/');
  }
}

function path(page) {
  return new URL(page.url()).pathname;
}

async function matrix(token, endpoint) {
  return fetch(`${synapseBase}/_matrix/client/v3/${endpoint}`, { headers: { authorization: `Bearer ${token}` } });
}

test('a person signs up through oidc-provider with imported claims, and comes back straight in', async () => {
  const { context, page } = await newPage();
  await page.goto(new URL('login', base).toString());
  assert.match(await page.textContent(`#provider-${BASIC}`), /Continue with Example IdP/);
  const order = await page.$$eval('.providers a', (links) => links.map((a) => a.id));
  assert.deepEqual(order, [`provider-${BASIC}`, `provider-${KEYJWT}`, `provider-${SECOND}`], 'as configured');
  await snapshot(page, 'upstream-login.png');
  await page.click(`#provider-${BASIC}`);
  await signInAtIdp(page, 'olivia');

  assert.match(path(page), /^\/upstream\/link\/[0-9A-Z]{26}$/);
  assert.match(await page.textContent('h1'), /Create your account/);
  assert.equal(await page.inputValue('#username'), 'olivia', 'the localpart comes from the IdP');
  assert.equal(await page.getAttribute('#username', 'readonly'), '', 'and is required as it is');
  assert.equal(await page.textContent('#mxid'), '@olivia:localhost');
  assert.equal(await page.textContent('#account-name'), 'olivia at the IdP');
  await snapshot(page, 'upstream-register.png');
  await page.uncheck('#import_email');
  await page.click('#submit');

  assert.equal(path(page), '/account/');
  assert.match(await page.textContent('main'), /olivia/);
  // The worker provisions her in the background.
  let user;
  for (let i = 0; i < 100 && user?.display_name === undefined; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 100));
    user = await (await fetch(`${synapseBase}/_synapse/mas/query_user?localpart=olivia`, {
      headers: { authorization: `Bearer ${SECRET}` },
    })).json();
  }
  assert.equal(user.display_name, 'Olivia Upstream', 'the suggested display name reached Synapse');

  // Signed out here, back through the IdP, which still knows her: straight in.
  await page.click('#nav-sign-out');
  assert.equal(path(page), '/login');
  await comeBack(page, BASIC);
  assert.equal(path(page), '/account/');
  await context.close();
});

test('an upstream account is linked to an existing account after a password sign-in (private_key_jwt, form_post)', async () => {
  const { context, page } = await newPage();
  await page.goto(new URL('login', base).toString());
  await page.click(`#provider-${KEYJWT}`);
  await signInAtIdp(page, 'lena-at-idp');
  assert.match(path(page), /^\/upstream\/link\//);
  const linkPage = page.url();
  await page.click('#login');
  await page.fill('#username', 'lena');
  await page.fill('#password', PASSWORD);
  await page.click('#submit');

  assert.equal(page.url(), linkPage, 'back at the link page, signed in');
  assert.equal(await page.textContent('#username'), 'lena');
  await snapshot(page, 'upstream-link.png');
  await page.click('#link');
  assert.equal(path(page), '/account/');

  // From now on the IdP account signs in as lena.
  await page.click('#nav-sign-out');
  await comeBack(page, KEYJWT);
  assert.equal(path(page), '/account/');
  assert.match(await page.textContent('main'), /lena/);
  await context.close();
});

test('a second instance of this service is the upstream of the first, and its sign-out ends the session here', async () => {
  const { context, page } = await newPage();
  await page.goto(new URL('login', base).toString());
  await page.click(`#provider-${SECOND}`);
  assert.ok(page.url().startsWith(upstreamBase), page.url());
  await page.fill('#username', 'ursula');
  await page.fill('#password', PASSWORD);
  await page.click('#submit');
  assert.match(await page.textContent('h1'), /Allow The downstream service/);
  await page.click('#allow');
  assert.match(path(page), /^\/upstream\/link\//);
  assert.equal(await page.inputValue('#username'), 'ursula');
  await page.click('#submit');
  assert.equal(path(page), '/account/');
  assert.match(await page.textContent('main'), /ursula/);

  // She signs out at the second instance; it tells this one, which signs her out too.
  await page.goto(new URL('account/', upstreamBase).toString());
  await page.click('#nav-sign-out');
  let signedOut = false;
  for (let i = 0; i < 50 && !signedOut; i++) {
    await page.goto(new URL('account/', base).toString());
    signedOut = path(page) === '/login';
    if (!signedOut) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(signedOut, 'the back-channel logout from the second instance signed her out here');
  await context.close();
});

test('a legacy client signs in through SSO, and a back-channel logout from the IdP ends it at Synapse', async () => {
  const flows = await (await fetch(new URL('_matrix/client/v3/login', base))).json();
  const sso = flows.flows.find((f) => f.type === 'm.login.sso');
  assert.deepEqual(sso.identity_providers.find((p) => p.id === 'oidc-idp'), {
    id: 'oidc-idp', name: 'Example IdP', brand: 'example',
  });

  const { context, page } = await newPage();
  let landed;
  await page.route(`${REDIRECT}**`, async (route) => {
    landed = new URL(route.request().url());
    await route.fulfill({ status: 200, body: 'back at the client' });
  });
  const start = new URL('_matrix/client/v3/login/sso/redirect/oidc-idp', base);
  start.search = new URLSearchParams({ redirectUrl: REDIRECT }).toString();
  await page.goto(start.toString());
  await signInAtIdp(page, 'olivia');
  assert.match(path(page), /^\/complete-compat-sso\//);
  await page.click('#continue');
  await page.waitForURL((url) => url.toString().startsWith(REDIRECT));
  const loginToken = landed.searchParams.get('loginToken');
  assert.ok(loginToken, landed.toString());

  const login = await fetch(new URL('_matrix/client/v3/login', base), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'm.login.token', token: loginToken }),
  });
  const session = await login.json();
  assert.equal(login.status, 200, JSON.stringify(session));
  const whoami = await matrix(session.access_token, 'account/whoami');
  assert.equal(whoami.status, 200);
  assert.equal((await whoami.json()).user_id, '@olivia:localhost');

  // She signs out at the IdP; it tells this service, which ends the client's session.
  await page.goto(`${idpIssuer}/session/end`);
  await page.click('button[name=logout][value=yes]');
  let status;
  for (let i = 0; i < 50; i++) {
    status = (await matrix(session.access_token, 'account/whoami')).status;
    if (status === 401) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(status, 401, 'Synapse refuses the token once the IdP session ended');
  await context.close();
});
