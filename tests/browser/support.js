// What the browser test files share: free ports, waiting for /health, a modern Synapse
// run by tests/synapse/serve_synapse.py, Chromium, and screenshots for people to look at.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import net from 'node:net';
import { chromium } from 'playwright-core';

const ARTIFACTS = join(import.meta.dirname, 'artifacts');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SYNAPSE_PYTHON = process.env.SYNAPSE_MODERN_PYTHON ?? '/var/tmp/mas-synapse/modern/bin/python';
const SERVE_SYNAPSE = join(import.meta.dirname, '..', 'synapse', 'serve_synapse.py');

// Screenshots are kept for people to look at, not asserted on; Chromium sometimes fails
// to capture one on a busy machine, which must not fail the test.
export async function snapshot(page, name) {
  try {
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, name) });
  } catch (error) {
    console.log(`# screenshot ${name} not taken: ${error.message.split('\n')[0]}`);
  }
}

export function freePort() {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

export async function waitForHealth(url) {
  for (let i = 0; i < 200; i++) {
    try {
      const response = await fetch(url);
      if (response.status === 200) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no answer from ${url}`);
}

// Starts tests/synapse/serve_synapse.py; resolves with { base, stop } once Synapse answers
// /health (base: http://127.0.0.1:PORT, no trailing slash). Its stdin stays open: it
// stops Synapse when that closes, should this process die without stopping it.
export function startSynapse(masEndpoint, secret, dir) {
  const synapse = spawn(
    SYNAPSE_PYTHON,
    [SERVE_SYNAPSE, '--mas-endpoint', masEndpoint, '--secret', secret, '--dir', dir, '--stop-on-eof'],
    { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } },
  );
  const stop = async () => {
    if (synapse.exitCode !== null || synapse.signalCode !== null) return;
    const exited = new Promise((resolve) => synapse.once('exit', resolve));
    synapse.kill('SIGTERM');
    const timeout = new Promise((resolve) => setTimeout(() => resolve('timeout'), 20_000).unref());
    if ((await Promise.race([exited, timeout])) === 'timeout') synapse.kill('SIGKILL');
  };
  const up = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('serve_synapse.py printed no URL within 90 s')), 90_000);
    synapse.once('error', (e) => { clearTimeout(timer); reject(new Error(`cannot run ${SYNAPSE_PYTHON}: ${e.message}`)); });
    synapse.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`serve_synapse.py exited (${code ?? signal}) before Synapse was up; see its output above`));
    });
    createInterface({ input: synapse.stdout }).once('line', (line) => {
      clearTimeout(timer);
      resolve({ base: line.trim(), stop });
    });
  });
  return { up, stop };
}

export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
