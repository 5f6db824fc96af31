// Starts a real grokgate process for the end-to-end tests: builds it from
// this repository (or takes GROKGATE_BIN), runs `serve` on a free port with a
// fresh database and the built-in xAI simulator, and reads the admin key and
// URLs it prints.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

// The repository root is two levels above this file (e2e/node/).
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const STARTUP_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
const BUILD_TIMEOUT_MS = 5 * 60_000;
const LOG_TAIL_BYTES = 16 << 10;

/**
 * Builds (or locates) grokgate and starts `grokgate serve` with extraArgs.
 * Resolves once the server has printed its listening line.
 */
export async function startGrokgate(extraArgs = []) {
  const dir = await mkdtemp(path.join(tmpdir(), 'grokgate-e2e-node-'));
  try {
    const bin = await grokgateBinary(dir);
    return await launch(bin, dir, extraArgs);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function grokgateBinary(dir) {
  if (process.env.GROKGATE_BIN) {
    const bin = path.resolve(process.env.GROKGATE_BIN);
    if (!existsSync(bin)) throw new Error(`GROKGATE_BIN=${process.env.GROKGATE_BIN} does not exist`);
    return bin;
  }
  if (!existsSync(path.join(repoRoot, 'go.mod'))) {
    throw new Error(`expected the grokgate repository at ${repoRoot} (no go.mod there); set GROKGATE_BIN instead`);
  }
  const bin = path.join(dir, process.platform === 'win32' ? 'grokgate.exe' : 'grokgate');
  try {
    await promisify(execFile)('go', ['build', '-o', bin, './cmd/grokgate'], {
      cwd: repoRoot,
      timeout: BUILD_TIMEOUT_MS,
      maxBuffer: 16 << 20,
    });
  } catch (err) {
    throw new Error(`go build ./cmd/grokgate failed in ${repoRoot}:\n${err.stderr || err.message}`);
  }
  return bin;
}

function launch(bin, dir, extraArgs) {
  // A clean environment for grokgate's own settings: no XAI_API_KEY means the
  // built-in simulator, and stray GROKGATE_* variables must not change the run.
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (name === 'XAI_API_KEY' || name === 'XAI_BASE_URL' || name.startsWith('GROKGATE_')) delete env[name];
  }
  const child = spawn(bin, ['serve', '--addr', '127.0.0.1:0', '--db', path.join(dir, 'test.db'), ...extraArgs], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Never leave the server behind if the test process ends abruptly.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  let logTail = '';
  const keepTail = (chunk) => {
    logTail = (logTail + chunk).slice(-LOG_TAIL_BYTES);
  };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', keepTail); // also keeps the pipe drained

  let exited = false;
  const exit = once(child, 'exit').then(([code, signal]) => {
    exited = true;
    return { code, signal };
  });

  const info = { adminKey: undefined, adminKeyID: undefined, simulatorURL: undefined, origin: undefined, baseURL: undefined };
  const ready = new Promise((resolve, reject) => {
    let expectKey = false;
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      keepTail(line + '\n');
      let m;
      if ((m = /here is an admin key \((key_[^)]+)\)/.exec(line))) {
        info.adminKeyID = m[1];
        expectKey = true;
      } else if (expectKey && (m = /^\s+(gg-[A-Za-z0-9_-]{43})\s*$/.exec(line))) {
        info.adminKey = m[1];
        expectKey = false;
      } else if ((m = /built-in xAI simulator at (http:\/\/[^\s)]+)/.exec(line))) {
        info.simulatorURL = m[1];
      } else if ((m = /^grokgate listening on (http:\/\/\S+) \(OpenAI base URL: (http:\/\/[^\s)]+)\)/.exec(line))) {
        info.origin = m[1];
        info.baseURL = m[2];
        const missing = ['adminKey', 'simulatorURL'].filter((k) => !info[k]);
        if (missing.length) reject(new Error(`grokgate is listening but did not print: ${missing.join(', ')}\n${logTail}`));
        else resolve();
      }
    });
    child.once('error', (err) => reject(new Error(`could not start ${bin}: ${err.message}`)));
    exit.then(({ code, signal }) =>
      reject(new Error(`grokgate exited before it was ready (code ${code}, signal ${signal}):\n${logTail}`)),
    );
  });

  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`grokgate did not print its listening line within ${STARTUP_TIMEOUT_MS} ms:\n${logTail}`)),
      STARTUP_TIMEOUT_MS,
    );
  });

  const server = {
    ...info,
    logTail: () => logTail,
    /** Stops grokgate with SIGTERM, waits for it, and removes its files. Returns its exit. */
    async stop() {
      try {
        if (exited) throw new Error(`grokgate exited by itself during the tests:\n${logTail}`);
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        const result = await exit;
        clearTimeout(killer);
        return result;
      } finally {
        process.removeListener('exit', killOnExit);
        await rm(dir, { recursive: true, force: true });
      }
    },
  };

  return Promise.race([ready, timeout])
    .then(() => Object.assign(server, info))
    .catch(async (err) => {
      if (!exited) {
        child.kill('SIGKILL');
        await exit;
      }
      process.removeListener('exit', killOnExit);
      throw err;
    })
    .finally(() => clearTimeout(timer));
}
