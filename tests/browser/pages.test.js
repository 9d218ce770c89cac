// The pages as a person sees them, in headless Chromium: sign in
// (a wrong password first), allow the client, and land on its redirect URI with a code
// the client can exchange. Run by .ci/run after the real-Synapse tests, whose run.sh
// makes the virtualenv of the modern Synapse (1.163.2) that mas-server talks to here:
// registration asks it whether a name is free, and the worker provisions new users
// there. tests/synapse/serve_synapse.py runs that Synapse.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, launchChromium, snapshot, startSynapse, waitForHealth } from './support.js';

const MAS_CLI = process.env.MAS_CLI;
const MAS_SERVER = process.env.MAS_SERVER;
const CLIENT_ID = '01J2ZQ9Y3XW6RMK1VF8H0N5D7B';
// A second static client, for the device flow: no redirect URI, a name of its own that the
// approval page must show. Static clients may use every grant type, the device code too.
const DEVICE_CLIENT_ID = '01J2ZQ9Y3XW6RMK1VF8H0N5D7C';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const REDIRECT = 'http://127.0.0.1:9/callback';
const PASSWORD = 'correct horse battery staple';

// matrix.secret on MAS's side, matrix_authentication_service.secret on Synapse's.
const SECRET = randomBytes(24).toString('hex');

let server;
let synapse; // { up, stop }: the serve_synapse.py process
let synapseBase; // e.g. http://127.0.0.1:PORT, no trailing slash
let browser;
let base;
let smtp; // the aiosmtpd process
let maildir; // where it keeps what it receives (a Maildir: new/ holds the messages)
let smtpPort;
let masRun; // { dir, env, config }: how to run mas-cli on this service's files
const MAIL_PYTHON = process.env.MAIL_PYTHON ?? '/var/tmp/mas-synapse/mail/bin/python';

// Synapse's side of the MAS API, called with the shared secret as MAS does.
function synapseApi(path, init = {}) {
  return fetch(`${synapseBase}/_synapse/mas/${path}`, {
    ...init,
    headers: { authorization: `Bearer ${SECRET}`, ...(init.headers ?? {}) },
  });
}

before(async () => {
  assert.ok(MAS_CLI && MAS_SERVER, 'set MAS_CLI and MAS_SERVER to the built binaries');
  const dir = mkdtempSync(join(tmpdir(), 'mas-browser-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}/`;
  // Synapse boots (a few seconds) while MAS's configuration and database are made; it
  // reaches MAS lazily, so MAS may come up after it.
  synapse = startSynapse(base, SECRET, join(dir, 'synapse'));
  synapse.up.catch(() => {}); // awaited below; not an unhandled rejection meanwhile
  // A real SMTP server (aiosmtpd, from tests/synapse/run.sh's `mail` venv) that keeps
  // every message it receives in a Maildir.
  smtpPort = await freePort();
  maildir = join(dir, 'maildir');
  startSmtp();
  const env = {
    ...process.env,
    MAS_EMAIL__TRANSPORT: 'smtp',
    MAS_EMAIL__MODE: 'plain',
    MAS_EMAIL__HOSTNAME: '127.0.0.1',
    MAS_EMAIL__PORT: String(smtpPort),
    MAS_EMAIL__FROM: '"Browser Test" <auth@example.com>',
    MAS_HTTP__PUBLIC_BASE: base,
    MAS_HTTP__LISTENERS: `[{name="web",resources=[{name="discovery"},{name="oauth"},{name="human"},{name="compat"},{name="health"}],binds=[{address="127.0.0.1:${port}"}]}]`,
    MAS_DATABASE__URI: `sqlite://${join(dir, 'mas.db')}`,
    MAS_ACCOUNT__PASSWORD_REGISTRATION_ENABLED: 'true',
    MAS_ACCOUNT__PASSWORD_RECOVERY_ENABLED: 'true',
    // Several sign-ins a minute from one address; MAS's default allows three.
    MAS_RATE_LIMITING__LOGIN__PER_IP__BURST: '100',
  };
  delete env.MAS_CONFIG;
  writeFileSync(join(dir, 'config.yaml'), execFileSync(MAS_CLI, ['config', 'generate']));
  writeFileSync(
    join(dir, 'clients.yaml'),
    `clients:\n  - client_id: ${CLIENT_ID}\n    client_auth_method: none\n    client_name: Browser Test\n    redirect_uris: [${REDIRECT}]\n`
      + `  - client_id: ${DEVICE_CLIENT_ID}\n    client_auth_method: none\n    client_name: Living Room TV\n`,
  );
  const config = ['-c', 'config.yaml', '-c', 'clients.yaml'];
  execFileSync(MAS_CLI, [...config, 'database', 'migrate'], { cwd: dir, env });
  synapseBase = (await synapse.up).base;
  Object.assign(env, {
    MAS_MATRIX__KIND: 'synapse',
    MAS_MATRIX__HOMESERVER: 'localhost',
    MAS_MATRIX__ENDPOINT: `${synapseBase}/`,
    MAS_MATRIX__SECRET: SECRET,
  });
  masRun = { dir, env, config };
  for (const name of ['alice', 'dora', 'erin', 'frank', 'grace', 'hana', 'ivy']) {
    execFileSync(MAS_CLI, [...config, 'manage', 'register-user', name, '-p', PASSWORD, '-y'], { cwd: dir, env });
  }
  server = spawn(MAS_SERVER, config, { cwd: dir, env, stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForHealth(`${base}health`);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
  smtp?.kill('SIGTERM');
  await synapse?.stop();
});

test('a person signs in, allows the client, and the client gets a code it can exchange', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  let landed;
  // The client's redirect URI: record where the browser is sent, answer nothing more.
  await page.route(`${REDIRECT}**`, async (route) => {
    landed = new URL(route.request().url());
    await route.fulfill({ status: 200, body: 'back at the client' });
  });

  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const authorize = new URL('authorize', base);
  authorize.search = new URLSearchParams({
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT,
    response_type: 'code',
    scope: 'openid urn:matrix:client:api:*',
    state: 'browser-state',
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();

  await page.goto(authorize.toString());
  assert.match(new URL(page.url()).pathname, /^\/login$/);
  assert.equal(await page.title(), `Sign in · 127.0.0.1`);

  await page.fill('#username', 'alice');
  await page.fill('#password', 'not the password');
  await page.click('#submit');
  assert.match(await page.textContent('[role=alert]'), /Wrong username or password/);

  await page.fill('#password', PASSWORD);
  await page.click('#submit');
  assert.match(new URL(page.url()).pathname, /^\/consent\//);
  assert.match(await page.textContent('h1'), /Allow Browser Test to access your account\?/);
  assert.match(await page.textContent('main'), /urn:matrix:client:api:\*/);
  await snapshot(page, 'consent.png');

  const cookies = await context.cookies(base);
  const session = cookies.find((c) => c.name === 'mas-session');
  assert.ok(session, 'a session cookie is set');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Lax');
  // A bare session ID would be a 26-character ULID; the sealed value is longer base64.
  assert.ok(!/^[0-9A-Z]{26}$/.test(session.value), 'the cookie is encrypted, not a bare ID');
  assert.ok(session.value.length > 40, `a sealed value: ${session.value}`);

  await page.click('#allow');
  await page.waitForURL(`${REDIRECT}**`);
  assert.ok(landed, 'the browser went back to the client');
  assert.equal(landed.searchParams.get('state'), 'browser-state');
  assert.equal(landed.searchParams.get('iss'), base);
  const code = landed.searchParams.get('code');
  assert.ok(code);

  const response = await fetch(new URL('oauth2/token', base), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      client_id: CLIENT_ID,
      code_verifier: verifier,
    }),
  });
  const tokens = await response.json();
  assert.equal(response.status, 200, JSON.stringify(tokens));
  assert.match(tokens.access_token, /^mat_/);
  assert.ok(tokens.id_token);
  await context.close();
});

test('a form without its CSRF token is refused', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(new URL('login', base).toString());
  await page.evaluate(() => { document.querySelector('input[name=csrf]').value = 'forged'; });
  await page.fill('#username', 'alice');
  await page.fill('#password', PASSWORD);
  await page.click('#submit');
  assert.match(await page.textContent('[role=alert]'), /The form expired/);
  const cookies = await context.cookies(base);
  assert.ok(!cookies.some((c) => c.name === 'mas-session'), 'no session without the token');
  await context.close();
});

test('a client asking for a new account (prompt=create) gets one made, then consent', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  let landed;
  await page.route(`${REDIRECT}**`, async (route) => {
    landed = new URL(route.request().url());
    await route.fulfill({ status: 200, body: 'back at the client' });
  });
  const discovery = await (await fetch(new URL('.well-known/openid-configuration', base))).json();
  assert.ok(discovery.prompt_values_supported.includes('create'));

  const challenge = createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url');
  const authorize = new URL('authorize', base);
  authorize.search = new URLSearchParams({
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT,
    response_type: 'code',
    scope: 'openid urn:matrix:client:api:*',
    prompt: 'create',
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  await page.goto(authorize.toString());
  assert.match(new URL(page.url()).pathname, /^\/register$/);
  assert.equal(await page.title(), 'Create an account · 127.0.0.1');

  const attempt = async (username, password, confirm, email = 'bob@example.com') => {
    await page.fill('#username', username);
    await page.fill('#email', email);
    await page.fill('#password', password);
    await page.fill('#password_confirm', confirm);
    await page.click('#submit');
  };
  await attempt('alice', PASSWORD, PASSWORD);
  assert.match(await page.textContent('[role=alert]'), /This username is taken/);
  await attempt('Bob', PASSWORD, PASSWORD);
  assert.match(await page.textContent('[role=alert]'), /lowercase letters/);
  await attempt('bob', 'password', 'password');
  assert.match(await page.textContent('[role=alert]'), /too easy to guess/);
  await attempt('bob', PASSWORD, `${PASSWORD}!`);
  assert.match(await page.textContent('[role=alert]'), /do not match/);
  assert.equal(await page.inputValue('#username'), 'bob', 'the username is kept');
  // A name that only the homeserver has (MAS has never heard of carol): Synapse says
  // it is not available, and the form refuses it.
  const provisioned = await synapseApi('provision_user', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ localpart: 'carol' }),
  });
  assert.equal(provisioned.status, 201, await provisioned.text());
  await attempt('carol', PASSWORD, PASSWORD);
  assert.match(await page.textContent('[role=alert]'), /This username is not available\./);
  assert.match(new URL(page.url()).pathname, /^\/register$/);

  // The browser itself refuses what is not an address (the field is type=email).
  await attempt('bob', PASSWORD, PASSWORD, 'bob');
  assert.equal(await page.$eval('#email', (e) => e.validity.typeMismatch), true);

  // The mail server is down when the form is sent: the page says the code is on its
  // way, the worker retries, and the code arrives once the server is back.
  await stopSmtp();
  await attempt('bob', PASSWORD, PASSWORD);
  assert.match(new URL(page.url()).pathname, /^\/register\/verify$/);
  assert.match(await page.textContent('#on-its-way'), /A code is on its way to bob@example\.com/);
  await snapshot(page, 'register-code.png');
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(mailFor('bob@example.com').length, 0, 'nothing delivered while the server is down');
  startSmtp();
  const [message] = await waitForMail('bob@example.com', 1, 30_000);
  const code = message.match(/^Subject: Your code for 127\.0\.0\.1: (\d{6})/m)?.[1];
  assert.ok(code, `a code in the subject:\n${message}`);
  assert.match(message, /finish creating your account/);
  await page.fill('#code', code);
  await page.click('#verify');
  assert.match(new URL(page.url()).pathname, /^\/consent\//);
  await snapshot(page, 'registered-consent.png');
  await page.click('#allow');
  await page.waitForURL(`${REDIRECT}**`);
  assert.ok(landed?.searchParams.get('code'), 'the client got a code');
  await context.close();

  // The new account signs in like any other.
  const again = await browser.newContext();
  const login = await again.newPage();
  await login.goto(new URL('login', base).toString());
  assert.ok(await login.$('#register'), 'the login page links to registration');
  await login.fill('#username', 'bob');
  await login.fill('#password', PASSWORD);
  await login.click('#submit');
  assert.equal(await login.$('[role=alert]'), null);
  assert.ok((await again.cookies(base)).some((c) => c.name === 'mas-session'));
  await again.close();

  // The worker inside mas-server provisions the new account on Synapse.
  let last;
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
    const response = await synapseApi('query_user?localpart=bob');
    last = `${response.status} ${await response.text()}`;
    if (response.status === 200) break;
  }
  assert.match(last, /^200 /, `Synapse knows bob within 10 s; last answer: ${last}`);
  assert.equal(JSON.parse(last.slice(4)).user_id, '@bob:localhost');
});

// A legacy client's login through the compatibility layer: a device Synapse knows.
async function compatLogin(username) {
  const response = await fetch(new URL('_matrix/client/v3/login', base), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: username },
      password: PASSWORD,
      initial_device_display_name: 'Old phone',
    }),
  });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  return body;
}

// A call to Synapse's client API with a token.
function matrix(token, path, init = {}) {
  return fetch(`${synapseBase}/_matrix/client/v3/${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
  });
}

// Signs in on the login page the browser is on.
async function signIn(page, username) {
  assert.match(new URL(page.url()).pathname, /^\/login$/);
  await page.fill('#username', username);
  await page.fill('#password', PASSWORD);
  await page.click('#submit');
}

// Uploads a master cross-signing key for the token's user; Synapse answers the status.
async function uploadMasterKey(token, userId) {
  const key = randomBytes(32).toString('base64').replace(/=+$/, '');
  const response = await matrix(token, 'keys/device_signing/upload', {
    method: 'POST',
    body: JSON.stringify({
      master_key: { user_id: userId, usage: ['master'], keys: { [`ed25519:${key}`]: key } },
    }),
  });
  return response.status;
}

test('a person manages their account: display name, device rename and sign-out, identity reset', async () => {
  const login = await compatLogin('dora');
  const token = login.access_token;
  const device = login.device_id;
  assert.equal((await matrix(token, 'account/whoami')).status, 200);

  const context = await browser.newContext();
  const page = await context.newPage();
  // Element's deep link, before signing in: the person comes back to that device.
  const deep = new URL('account/', base);
  deep.search = new URLSearchParams({ action: 'org.matrix.device_view', device_id: device }).toString();
  await page.goto(deep.toString());
  await signIn(page, 'dora');
  assert.match(new URL(page.url()).pathname, /^\/account\/sessions\/[0-9A-Z]{26}$/);
  assert.equal(await page.textContent('#device-id'), device);
  await snapshot(page, 'account-session.png');

  // Rename the device: Synapse shows the new name.
  await page.fill('#name', 'Work phone');
  await page.click('#rename');
  assert.match(await page.textContent('#notice'), /The device is renamed/);
  await snapshot(page, 'account-sessions.png');
  const named = await (await matrix(token, `devices/${device}`)).json();
  assert.equal(named.display_name, 'Work phone');

  // The display name, on the profile.
  await page.goto(new URL('account/?action=org.matrix.profile', base).toString());
  await page.fill('#display_name', 'Dora Explorer');
  await page.click('#save-display-name');
  assert.match(await page.textContent('#notice'), /Your display name is changed/);
  assert.equal(await page.textContent('#display-name'), 'Dora Explorer');
  await snapshot(page, 'account.png');
  const profile = await (await matrix(token, 'profile/@dora:localhost/displayname')).json();
  assert.equal(profile.displayname, 'Dora Explorer');

  // Identity reset: a second master key needs interactive auth until it is allowed.
  assert.equal(await uploadMasterKey(token, '@dora:localhost'), 200, 'the first key needs nothing');
  assert.equal(await uploadMasterKey(token, '@dora:localhost'), 401, 'a replacement needs approval');
  await page.goto(new URL('account/?action=org.matrix.cross_signing_reset', base).toString());
  assert.equal(await page.$('#password'), null, 'signed in just now: no password asked');
  await snapshot(page, 'account-cross-signing-reset.png');
  await page.click('#confirm');
  assert.match(await page.textContent('h1'), /Identity reset allowed/);
  assert.equal(await uploadMasterKey(token, '@dora:localhost'), 200, 'allowed for a while');

  // Sign the device out from the list: Synapse refuses its token at once.
  await page.goto(new URL(`account/?action=org.matrix.devices_list`, base).toString());
  const row = page.locator(`li[data-device="${device}"]`);
  assert.match(await row.textContent(), /Work phone/);
  await row.locator('button.end').click();
  assert.match(await page.textContent('#notice'), /The session is signed out/);
  assert.equal(await page.locator(`li[data-device="${device}"]`).count(), 0);
  const whoami = await matrix(token, 'account/whoami');
  assert.equal(whoami.status, 401, await whoami.text());
  await context.close();
});

test('a person deactivates their account, erasing it, and can sign in nowhere', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(new URL('account/', base).toString());
  await signIn(page, 'erin');
  assert.match(new URL(page.url()).pathname, /^\/account\/$/);
  await page.click('#deactivate-link');
  await page.check('#erase');
  await snapshot(page, 'account-deactivate.png');
  await page.click('#confirm');
  assert.match(await page.textContent('h1'), /Your account is deactivated/);

  const refused = await fetch(new URL('_matrix/client/v3/login', base), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'erin' }, password: PASSWORD }),
  });
  assert.equal(refused.status, 403);
  assert.equal((await refused.json()).errcode, 'M_USER_DEACTIVATED');
  await page.goto(new URL('login', base).toString());
  await signIn(page, 'erin');
  assert.match(await page.textContent('[role=alert]'), /locked or deactivated/);

  // The worker deactivates (and erases) the account on Synapse.
  let last;
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
    const response = await synapseApi('query_user?localpart=erin');
    last = await response.json();
    if (last.is_deactivated) break;
  }
  assert.equal(last?.is_deactivated, true, `Synapse deactivates erin within 10 s; last answer: ${JSON.stringify(last)}`);
  await context.close();
});

test('a client asking for response_mode=form_post gets the code posted by the page script, within its CSP', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  // Every Content Security Policy violation, as Chromium prints it and as the page's
  // event reports it (through a binding: the pages may not run scripts of their own).
  const violations = [];
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
  });
  await context.exposeBinding('reportViolation', (_source, text) => violations.push(text));
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.reportViolation(`securitypolicyviolation: ${e.effectiveDirective} blocked ${e.blockedURI}`);
    });
  });
  let posted;
  await page.route(`${REDIRECT}**`, async (route) => {
    const request = route.request();
    posted = {
      method: request.method(),
      url: request.url(),
      contentType: await request.headerValue('content-type'),
      form: new URLSearchParams(request.postData() ?? ''),
    };
    await route.fulfill({ status: 200, body: 'back at the client' });
  });

  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  // A state the page must escape in its form and the browser must post back unchanged.
  const state = 'form "post" & <state>';
  const authorize = new URL('authorize', base);
  authorize.search = new URLSearchParams({
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT,
    response_type: 'code',
    response_mode: 'form_post',
    scope: 'openid urn:matrix:client:api:*',
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  await page.goto(authorize.toString());
  await signIn(page, 'frank');
  assert.match(new URL(page.url()).pathname, /^\/consent\//);
  assert.match(await page.textContent('h1'), /Allow Browser Test to access your account\?/);

  // The detector works: a script put into an ordinary page is blocked and reported.
  await page.evaluate(() => {
    const script = document.createElement('script');
    script.textContent = 'document.title = "injected"';
    document.head.append(script);
  });
  assert.notEqual(await page.title(), 'injected', 'the ordinary pages run no scripts');
  for (const deadline = Date.now() + 2_000; !violations.length && Date.now() < deadline;) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(violations.length > 0, 'a blocked script is reported');
  violations.length = 0;

  const formPage = page.waitForResponse(
    (r) => r.request().method() === 'POST' && new URL(r.url()).pathname.startsWith('/consent/'),
  );
  await page.click('#allow');
  const answer = await formPage;
  assert.equal(answer.status(), 200, 'the answer is a page, not a redirect');
  const policy = answer.headers()['content-security-policy'];
  assert.match(policy, /script-src 'sha256-[A-Za-z0-9+/]{43}='/, policy);
  assert.ok(!policy.includes('unsafe-inline'), policy);
  await page.waitForURL(`${REDIRECT}**`, { timeout: 10_000 }).catch((error) => {
    assert.fail(`the page did not post to the client: ${error.message.split('\n')[0]}; CSP: ${JSON.stringify(violations)}`);
  });
  assert.ok(posted, 'the browser went back to the client');
  assert.equal(posted.method, 'POST');
  assert.equal(posted.url, REDIRECT, 'nothing in the query');
  assert.match(posted.contentType ?? '', /^application\/x-www-form-urlencoded/);
  assert.deepEqual([...posted.form.keys()].sort(), ['code', 'iss', 'state']);
  assert.equal(posted.form.get('state'), state);
  assert.equal(posted.form.get('iss'), base);
  assert.deepEqual(violations, [], 'no Content Security Policy violation');

  const response = await fetch(new URL('oauth2/token', base), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: posted.form.get('code'),
      redirect_uri: REDIRECT,
      client_id: CLIENT_ID,
      code_verifier: verifier,
    }),
  });
  const tokens = await response.json();
  assert.equal(response.status, 200, JSON.stringify(tokens));
  assert.match(tokens.access_token, /^mat_/);
  assert.ok(tokens.id_token);
  await context.close();
});

// The device's side of the device flow (RFC 8628): it asks for codes, then polls the
// token endpoint no more often than the `interval` it was given.
async function startDevice(deviceId) {
  const response = await fetch(new URL('oauth2/device', base), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      client_id: DEVICE_CLIENT_ID,
      scope: `openid urn:matrix:client:api:* urn:matrix:client:device:${deviceId}`,
    }),
  });
  const authorization = await response.json();
  assert.equal(response.status, 200, JSON.stringify(authorization));
  let lastPoll = 0;
  const poll = async () => {
    const wait = lastPoll + authorization.interval * 1000 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    lastPoll = Date.now();
    const answer = await fetch(new URL('oauth2/token', base), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: DEVICE_GRANT,
        device_code: authorization.device_code,
        client_id: DEVICE_CLIENT_ID,
      }),
    });
    return { status: answer.status, body: await answer.json() };
  };
  return { ...authorization, poll };
}

const USER_CODE = /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/;

test('a device shows a code; the person signs in, allows it, and the device gets a token Synapse takes', async () => {
  const device = await startDevice('LIVINGROOMTV');
  assert.match(device.user_code, USER_CODE);
  assert.equal(device.verification_uri, `${base}link`);
  assert.equal(device.verification_uri_complete, `${base}link?code=${device.user_code}`);
  assert.equal(device.expires_in, 600);
  assert.equal(device.interval, 5);
  const pending = await device.poll();
  assert.equal(pending.status, 400, JSON.stringify(pending.body));
  assert.equal(pending.body.error, 'authorization_pending');

  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(device.verification_uri_complete);
  await signIn(page, 'grace');
  // Back where the person started, the code filled in.
  const link = new URL(page.url());
  assert.equal(link.pathname, '/link');
  assert.equal(link.searchParams.get('code'), device.user_code);
  assert.equal(await page.title(), 'Connect a device · 127.0.0.1');
  assert.equal(await page.inputValue('#code'), device.user_code);
  await snapshot(page, 'device-link.png');

  await page.click('#submit');
  assert.match(new URL(page.url()).pathname, /^\/device\/[0-9A-Z]{26}$/);
  const approval = page.url();
  assert.match(await page.textContent('h1'), /Allow Living Room TV to access your account\?/);
  const main = await page.textContent('main');
  assert.match(main, /You are signed in as grace\./);
  assert.match(main, /Sign in this device: LIVINGROOMTV/);
  assert.equal(await page.$('#unverified'), null, 'a static client is not marked unverified');
  await snapshot(page, 'device-approval.png');

  await page.click('#allow');
  assert.equal(await page.textContent('h1'), 'Device connected');
  assert.match(await page.textContent('main'), /You can go back to your device\./);
  await snapshot(page, 'device-done.png');
  // The approval page cannot be answered again.
  const again = await page.goto(approval);
  assert.equal(again.status(), 400);
  assert.equal(await page.textContent('h1'), 'This code has expired');
  await context.close();

  const granted = await device.poll();
  assert.equal(granted.status, 200, JSON.stringify(granted.body));
  assert.match(granted.body.access_token, /^mat_/);
  assert.ok(granted.body.refresh_token);
  assert.ok(granted.body.id_token);
  const whoami = await matrix(granted.body.access_token, 'account/whoami');
  const me = await whoami.json();
  assert.equal(whoami.status, 200, JSON.stringify(me));
  assert.equal(me.user_id, '@grace:localhost');
  assert.equal(me.device_id, 'LIVINGROOMTV');
});

test('at /link an unknown code is refused, and a device the person denies gets access_denied', async () => {
  const device = await startDevice('KITCHENTV');
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(new URL('link', base).toString());
  await signIn(page, 'grace');
  assert.equal(new URL(page.url()).pathname, '/link');
  assert.equal(await page.inputValue('#code'), '');

  const unknown = device.user_code === 'BBBB-BBBB' ? 'CCCC-CCCC' : 'BBBB-BBBB';
  await page.fill('#code', unknown);
  const [refused] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/link'),
    page.click('#submit'),
  ]);
  assert.equal(refused.status(), 404);
  assert.equal(await page.textContent('[role=alert]'), 'This code is unknown or has expired.');
  assert.equal(await page.inputValue('#code'), unknown, 'the code is kept');
  await snapshot(page, 'device-link-unknown.png');

  // Typed as a person might: lower case, a space for the dash.
  await page.fill('#code', device.user_code.replace('-', ' ').toLowerCase());
  await page.click('#submit');
  assert.match(new URL(page.url()).pathname, /^\/device\/[0-9A-Z]{26}$/);
  assert.match(await page.textContent('h1'), /Allow Living Room TV to access your account\?/);
  assert.match(await page.textContent('main'), /Sign in this device: KITCHENTV/);
  await page.click('#deny');
  assert.equal(await page.textContent('h1'), 'Device not connected');
  assert.match(await page.textContent('main'), /The device was refused access to your account\./);
  await context.close();

  const denied = await device.poll();
  // docs/oauth.md: `access_denied` answers 403 (as MAS does), whatever the endpoint.
  assert.equal(denied.status, 403, JSON.stringify(denied.body));
  assert.equal(denied.body.error, 'access_denied');
  assert.equal(denied.body.access_token, undefined);
});

// Starts the SMTP server on its port, keeping what it receives in the Maildir.
function startSmtp() {
  smtp = spawn(
    MAIL_PYTHON,
    ['-m', 'aiosmtpd', '-n', '-l', `127.0.0.1:${smtpPort}`, '-c', 'aiosmtpd.handlers.Mailbox', maildir],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
}

// Stops the SMTP server and waits until it is gone.
async function stopSmtp() {
  const exited = new Promise((resolve) => smtp.once('exit', resolve));
  smtp.kill('SIGTERM');
  await exited;
}

// The messages the SMTP server received for `to`, newest last, as raw text.
function mailFor(to) {
  const received = join(maildir, 'new');
  let names = [];
  try {
    names = readdirSync(received).sort();
  } catch {}
  return names
    .map((name) => readFileSync(join(received, name), 'utf8'))
    .filter((message) => new RegExp(`^To: .*${to.replace('.', '\\.')}`, 'mi').test(message));
}

async function waitForMail(to, count, within = 15_000) {
  for (const deadline = Date.now() + within; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
    const messages = mailFor(to);
    if (messages.length >= count) return messages;
  }
  throw new Error(`no message ${count} for ${to} within ${within / 1000} s; the server got: ${readdirSync(join(maildir, 'new')).length} message(s)`);
}

test('a person adds an email address with the code a real SMTP server received', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(new URL('account/', base).toString());
  await signIn(page, 'hana');
  await page.fill('#email', 'hana@example.com');
  await page.click('#add-email');
  assert.match(new URL(page.url()).pathname, /^\/account\/emails\/[0-9A-Z]{26}$/);
  assert.equal(await page.textContent('#email'), 'hana@example.com');
  await snapshot(page, 'account-email-code.png');

  // The worker inside mas-server sends it through the job queue.
  const [message] = await waitForMail('hana@example.com', 1);
  assert.match(message, /^From: "Browser Test" <auth@example\.com>/m);
  assert.match(message, /^Content-Type: multipart\/alternative/m);
  assert.match(message, /Content-Type: text\/html/);
  const code = message.match(/^Subject: Your code for 127\.0\.0\.1: (\d{6})/m)?.[1];
  assert.ok(code, `a code in the subject:\n${message}`);

  await page.fill('#code', '000000' === code ? '111111' : '000000');
  await page.click('#verify');
  assert.match(await page.textContent('[role=alert]'), /not the code that was sent/);
  await page.fill('#code', code);
  await page.click('#verify');
  assert.match(await page.textContent('#notice'), /The email address is added/);
  assert.equal(await page.locator('li[data-email="hana@example.com"]').count(), 1);

  // And removed again.
  await page.locator('li[data-email="hana@example.com"] button.remove-email').click();
  assert.match(await page.textContent('#notice'), /The email address is removed/);
  assert.equal(await page.locator('li[data-email="hana@example.com"]').count(), 0);
  await context.close();
});

test('a person who forgot their password gets a link by email and sets a new one', async () => {
  const { dir, env, config } = masRun;
  execFileSync(MAS_CLI, [...config, 'manage', 'add-email', 'ivy', 'ivy@example.com'], { cwd: dir, env });
  // Signed in elsewhere, on a phone: the recovery ends that session too.
  const phone = await compatLogin('ivy');
  assert.equal((await matrix(phone.access_token, 'account/whoami')).status, 200);

  // A French browser (Chromium sends Accept-Language: fr-FR): the pages and the mail are
  // in French.
  const context = await browser.newContext({ locale: 'fr-FR' });
  const page = await context.newPage();
  await page.goto(new URL('login', base).toString());
  assert.equal(await page.getAttribute('html', 'lang'), 'fr');
  assert.match(await page.textContent('#forgot'), /^Mot de passe oublié\u00a0\?$/);
  await page.click('#forgot');
  assert.match(new URL(page.url()).pathname, /^\/recover$/);
  await snapshot(page, 'recover.png');

  // An address no account has gets the same page, and no message.
  await page.fill('#email', 'nobody@example.com');
  await page.click('#submit');
  const unknown = await page.textContent('#sent');
  await page.goto(new URL('recover', base).toString());
  await page.fill('#email', 'ivy@example.com');
  await page.click('#submit');
  const known = await page.textContent('#sent');
  assert.equal(known.replace('ivy@example.com', 'X'), unknown.replace('nobody@example.com', 'X'));
  assert.match(known, /un lien pour choisir un nouveau mot de passe vient d’y être envoyé/);

  const [message] = await waitForMail('ivy@example.com', 1);
  assert.match(message, /^Subject: Choisir un nouveau mot de passe pour 127\.0\.0\.1/m);
  // Quoted-printable may break or encode the line: the link is read from the decoded text.
  const decoded = message.replace(/=\r?\n/g, '').replace(/=3D/g, '=');
  const link = decoded.match(/(http:\/\/127\.0\.0\.1:\d+\/account\/password\/recovery\?ticket=[A-Za-z0-9]{32})/)?.[1];
  assert.ok(link, `a link in the message:\n${message}`);
  assert.equal(mailFor('nobody@example.com').length, 0, 'nothing is sent to an unknown address');

  const NEW = 'a completely different passphrase';
  await page.goto(link);
  assert.equal(await page.textContent('#email'), 'ivy@example.com');
  assert.ok(await page.isChecked('#sign_out_everywhere'));
  await page.fill('#new_password', NEW);
  await page.fill('#new_password_confirm', `${NEW}!`);
  await page.click('#submit');
  assert.match(await page.textContent('[role=alert]'), /ne correspondent pas/);
  await page.fill('#new_password', NEW);
  await page.fill('#new_password_confirm', NEW);
  await page.click('#submit');
  assert.match(await page.textContent('h1'), /Votre mot de passe est enregistré/);

  // The phone's session ended; Synapse no longer takes its token.
  let status;
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
    status = (await matrix(phone.access_token, 'account/whoami')).status;
    if (status === 401) break;
  }
  assert.equal(status, 401, 'the old session is signed out');

  // The link works once.
  await page.goto(link);
  assert.match(await page.textContent('h1'), /Ce lien ne fonctionne plus/);

  // The new password signs in, the old one does not.
  await page.goto(new URL('login', base).toString());
  await page.fill('#username', 'ivy');
  await page.fill('#password', PASSWORD);
  await page.click('#submit');
  assert.ok(await page.$('[role=alert]'), 'the old password is refused');
  await page.fill('#username', 'ivy');
  await page.fill('#password', NEW);
  await page.click('#submit');
  assert.equal(await page.$('[role=alert]'), null);
  assert.ok((await context.cookies(base)).some((c) => c.name === 'mas-session'));
  await context.close();
});

test('mas-cli doctor --send-test-email sends through the configured transport', async () => {
  const { dir, env, config } = masRun;
  const output = execFileSync(MAS_CLI, [...config, 'doctor', '--send-test-email', 'ops@example.com'], {
    cwd: dir,
    env,
    encoding: 'utf8',
  });
  assert.match(output, /email.*a test message to ops@example\.com was accepted/);
  const [message] = await waitForMail('ops@example.com', 1);
  assert.match(message, /^Subject: Test message from 127\.0\.0\.1/m);
});

test('every example of docs/setup/email.md sends a test message as it says', async () => {
  const { dir, env, config } = masRun;
  const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'setup', 'email.md'), 'utf8');
  const examples = Object.fromEntries(
    [...doc.matchAll(/<!-- example: (\w+) -->\n```yaml\n([\s\S]*?)```/g)].map((m) => [m[1], m[2]]),
  );
  assert.deepEqual(Object.keys(examples).sort(), ['blackhole', 'sendmail', 'smtp']);
  // The file's `email` section as written: none of the harness's own MAS_EMAIL__ values.
  const plain = Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('MAS_EMAIL__')));
  const smtpPort = env.MAS_EMAIL__PORT;
  const kept = join(dir, 'sendmail-kept');
  mkdirSync(kept, { recursive: true });
  const script = join(dir, 'fake-sendmail.sh');
  writeFileSync(script, `#!/bin/sh\nprintf '%s\\n' "$@" > "${kept}/args"\ncat > "${kept}/message"\n`, { mode: 0o755 });
  const run = (name, overrides) => {
    writeFileSync(join(dir, `email-${name}.yaml`), examples[name]);
    return execFileSync(MAS_CLI, [...config, '-c', `email-${name}.yaml`, 'doctor', '--send-test-email', `${name}@example.com`], {
      cwd: dir,
      env: { ...plain, ...overrides },
      encoding: 'utf8',
    });
  };

  assert.match(run('blackhole', {}), /email.*transport blackhole: the test message to blackhole@example\.com was dropped/);

  // The example's relay is on this machine at port 25; here it listens elsewhere.
  assert.match(run('smtp', { MAS_EMAIL__PORT: smtpPort }), /a test message to smtp@example\.com was accepted/);
  const [message] = await waitForMail('smtp@example.com', 1);
  assert.match(message, /^From: "Example Chat" <no-reply@example\.com>/m);
  assert.match(message, /^Reply-To: "Example Chat support" <support@example\.com>/m);

  assert.match(run('sendmail', { MAS_EMAIL__COMMAND: script }), /a test message to sendmail@example\.com was accepted/);
  assert.match(readFileSync(join(kept, 'args'), 'utf8'), /sendmail@example\.com/);
  assert.match(readFileSync(join(kept, 'message'), 'utf8'), /^Subject: Test message from 127\.0\.0\.1/m);
});
