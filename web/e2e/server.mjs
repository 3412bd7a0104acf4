// Starts the real `jinliu` binary for the browser tests: a free port on 127.0.0.1, a temporary
// data directory (fresh SQLite, fresh demo credentials), the sandboxes on, web/dist served.

import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..', '..')

/** The binary: JINLIU_BIN, else the newest of target/{debug,release}/jinliu. */
function binary() {
  // Relative to where the tests were started (make runs them in web/).
  if (process.env.JINLIU_BIN) return resolve(process.env.JINLIU_BIN)
  for (const p of ['target/debug/jinliu', 'target/release/jinliu']) {
    if (existsSync(join(root, p))) return join(root, p)
  }
  throw new Error('no jinliu binary: run `cargo build -p jinliu-server` (or set JINLIU_BIN)')
}

/** A port the kernel just handed out and that is free again. The binary needs it up front:
 *  the sandboxes' URLs are built from JINLIU_PUBLIC_URL. */
function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer()
    s.unref()
    s.on('error', fail)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => ok(port))
    })
  })
}

/** Polls `check` until it returns a truthy value or `ms` pass. */
export async function until(check, ms, what) {
  const deadline = Date.now() + ms
  let last
  while (Date.now() < deadline) {
    try {
      const v = await check()
      if (v) return v
    } catch (e) {
      if (e?.fatal) throw e
      last = e
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last}` : ''}`)
}

export async function startJinliu(extraEnv = {}) {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const dataDir = mkdtempSync(join(tmpdir(), 'jinliu-e2e-'))
  const log = []
  const child = spawn(binary(), ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      RUST_LOG: process.env.RUST_LOG ?? 'warn',
      JINLIU_PUBLIC_URL: base,
      JINLIU_SANDBOX: 'true',
      JINLIU_WEB_DIR: join(root, 'web', 'dist'),
      // TPay and ECPay send nothing when a payment lapses: jinliu finds out by asking them
      // (status sync). Ask at once and look for due work often, so the expiry tests see it.
      JINLIU_SYNC_AFTER_SECS: '0',
      JINLIU_SYNC_INTERVAL_MS: '200',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout.on('data', (d) => log.push(String(d)))
  child.stderr.on('data', (d) => log.push(String(d)))
  let spawnError = null
  child.on('error', (e) => (spawnError = e))
  const exited = new Promise((r) => {
    child.on('exit', r)
    child.on('error', r)
  })
  try {
    await until(
      async () => {
        if (spawnError) throw Object.assign(new Error(`cannot start ${binary()}: ${spawnError.message}`), { fatal: true })
        if (child.exitCode !== null) throw Object.assign(new Error(`jinliu exited with ${child.exitCode}`), { fatal: true })
        return (await fetch(`${base}/health`)).ok
      },
      30_000,
      `${base}/health`,
    )
    const credsPath = join(dataDir, 'demo-credentials.json')
    const creds = await until(() => existsSync(credsPath) && JSON.parse(readFileSync(credsPath, 'utf8')), 10_000, credsPath)
    return {
      base,
      secretKey: creds.secretKey,
      log,
      async api(method, path, body, headers = {}) {
        const res = await fetch(`${base}${path}`, {
          method,
          headers: { authorization: `Bearer ${creds.secretKey}`, 'content-type': 'application/json', ...headers },
          body: body === undefined ? undefined : JSON.stringify(body),
        })
        const json = await res.json().catch(() => null)
        if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`)
        return json.data ?? json
      },
      async stop() {
        child.kill('SIGTERM')
        await exited
        rmSync(dataDir, { recursive: true, force: true })
      },
    }
  } catch (e) {
    child.kill('SIGKILL')
    await exited
    throw new Error(`${e.message}\n--- jinliu log ---\n${log.join('')}`)
  }
}

/** The example merchant site (examples/merchant-site) on its own port: another origin. */
export async function startMerchantSite(jl) {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const log = []
  const child = spawn(process.execPath, [join(root, 'examples', 'merchant-site', 'server.mjs')], {
    cwd: root,
    env: { PATH: process.env.PATH, PORT: String(port), JINLIU_URL: jl.base, JINLIU_SECRET_KEY: jl.secretKey },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout.on('data', (d) => log.push(String(d)))
  child.stderr.on('data', (d) => log.push(String(d)))
  const exited = new Promise((r) => child.on('exit', r))
  await until(
    async () => {
      if (child.exitCode !== null) throw Object.assign(new Error(`merchant site exited: ${log.join('')}`), { fatal: true })
      return (await fetch(base)).ok
    },
    10_000,
    base,
  )
  return {
    base,
    log,
    async stop() {
      child.kill('SIGTERM')
      await exited
    },
  }
}
