// Starts the real mock-upstream and modelswitch binaries on ephemeral loopback
// ports with a generated config, like tests/sdk/conftest.py; every wait is
// bounded and both processes are killed when the test file ends.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.MODELSWITCH_BIN_DIR || path.join(ROOT, 'target', 'debug');
export const KEY = 'sk-node-test-key';

// The SDKs live under target/node (installed by `make test-node`), not in the
// source tree.
const NODE_MODULES = process.env.MODELSWITCH_NODE_DIR || path.join(ROOT, 'target', 'node');
export const requireSdk = createRequire(path.join(NODE_MODULES, 'package.json'));

// Providers the gateway is given, all pointing at the one mock.
export const PROVIDERS = {
  openai: { type: 'openai', suffix: '/v1' },
  anthropic: { type: 'anthropic', suffix: '' },
  gemini: { type: 'gemini', suffix: '' },
  'openai-responses': { type: 'openai-responses', suffix: '/v1' },
};

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function tomlString(s) {
  return JSON.stringify(s); // a JSON string is a valid TOML basic string
}

function config(mockPort, port, models) {
  const lines = [
    '[server]',
    `listen = "127.0.0.1:${port}"`,
    'threads = 2',
    'first_event_timeout = "5s"',
    'idle_timeout = "5s"',
  ];
  // Only the providers the models use: MODELSWITCH_TEST_UPSTREAMS can leave
  // some out.
  const used = new Set(Object.values(models).flatMap((chain) => chain.map(([p]) => p)));
  for (const [name, p] of Object.entries(PROVIDERS)) {
    if (!used.has(name)) continue;
    lines.push('', '[[providers]]', `name = "${name}"`, `type = "${p.type}"`,
      `base_url = "http://127.0.0.1:${mockPort}${p.suffix}"`, `api_key = "sk-upstream-${name}"`);
  }
  lines.push('', '[[api_keys]]', `key = "${KEY}"`, 'name = "node"');
  for (const [name, chain] of Object.entries(models)) {
    const targets = chain.map(([p, m]) => `{ provider = ${tomlString(p)}, model = ${tomlString(m)} }`).join(', ');
    lines.push('', '[[models]]', `name = ${tomlString(name)}`, `targets = [${targets}]`);
  }
  return lines.join('\n') + '\n';
}

function canConnect(port) {
  return new Promise((resolve) => {
    const c = connect({ host: '127.0.0.1', port, timeout: 200 }, () => { c.destroy(); resolve(true); });
    c.on('error', () => resolve(false));
    c.on('timeout', () => { c.destroy(); resolve(false); });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function firstLine(proc, ms) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error('mock-upstream printed nothing')), ms);
    proc.stdout.on('data', (d) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i >= 0) { clearTimeout(t); resolve(buf.slice(0, i)); }
    });
    proc.on('exit', (code) => { clearTimeout(t); reject(new Error(`mock-upstream exited (${code})`)); });
  });
}

/** Starts mock + gateway; `models` maps a model name to [[provider, upstream model], ...]. */
export async function startStack(models) {
  const procs = [];
  const stop = () => { for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL'); };
  try {
    const mock = spawn(path.join(BIN, 'mock-upstream'), ['--listen', '127.0.0.1:0', '--threads', '2'],
      { stdio: ['ignore', 'pipe', 'ignore'] });
    procs.push(mock);
    const line = await firstLine(mock, 10_000);
    const mockPort = Number(line.trim().split(':').pop());
    const dir = mkdtempSync(path.join(tmpdir(), 'modelswitch-node-'));
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      const cfg = path.join(dir, 'gateway.toml');
      writeFileSync(cfg, config(mockPort, port, models));
      const gw = spawn(path.join(BIN, 'modelswitch'), ['--config', cfg],
        { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } });
      let stderr = '';
      gw.stderr.on('data', (d) => { if (stderr.length < 8192) stderr += d; });
      const deadline = Date.now() + 10_000;
      let up = false;
      while (Date.now() < deadline && gw.exitCode === null) {
        if (await canConnect(port)) { up = true; break; }
        await sleep(30);
      }
      if (up) {
        procs.push(gw);
        const gateway = `http://127.0.0.1:${port}`;
        const mockUrl = `http://127.0.0.1:${mockPort}`;
        return {
          gateway,
          mock: mockUrl,
          async stats() {
            const r = await fetch(`${mockUrl}/_mock/stats`, { signal: AbortSignal.timeout(5000) });
            return r.json();
          },
          stop,
        };
      }
      gw.kill('SIGKILL');
      if (gw.exitCode !== null && stderr) throw new Error(`gateway exited: ${stderr}`);
    }
    throw new Error('gateway did not start');
  } catch (e) {
    stop();
    throw e;
  }
}
