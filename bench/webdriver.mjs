// WebDriver (plain JSON over HTTP) to chromedriver with Node's own fetch,
// for the browser benchmarks (page-load.mjs, browser-pair.mjs): no npm
// package. Every session is a new headless Chromium with a fresh profile.

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // WebRTC on loopback: host candidates with their IP, not an mDNS name.
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--window-size=1200,900'
]

function freePort () {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

async function call (port, method, path, body) {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body == null ? undefined : JSON.stringify(body)
  })
  const json = await response.json()
  if (!response.ok) {
    throw new Error(`${method} ${path}: ${JSON.stringify(json.value)}`)
  }
  return json.value
}

// A chromedriver child process on a free port; `stop()` kills it.
export async function startChromedriver () {
  const port = await freePort()
  const child = spawn(process.env.CHROMEDRIVER ?? 'chromedriver', [`--port=${port}`], { stdio: 'ignore' })
  const deadline = Date.now() + 20000
  while (Date.now() < deadline) {
    try {
      const status = await call(port, 'GET', '/status')
      if (status.ready) return { port, stop: () => child.kill() }
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  child.kill()
  throw new Error(`chromedriver did not answer on port ${port}`)
}

// One browser: `goto(url)`, `run(script, ...args)` (synchronous script),
// `runAsync(script, ...args)` (the last argument is the callback), `close()`.
export async function openBrowser (driver, timeoutMs) {
  const profile = mkdtempSync(join(tmpdir(), 'bench-chromium-'))
  let session
  try {
    session = await call(driver.port, 'POST', '/session', {
      capabilities: {
        alwaysMatch: {
          'goog:chromeOptions': {
            binary: process.env.CHROMIUM ?? '/usr/bin/chromium',
            args: [...CHROMIUM_ARGS, `--user-data-dir=${profile}`]
          },
          timeouts: { script: timeoutMs, pageLoad: timeoutMs }
        }
      }
    })
  } catch (err) {
    rmSync(profile, { recursive: true, force: true })
    throw err
  }
  const id = session.sessionId
  return {
    goto: (url) => call(driver.port, 'POST', `/session/${id}/url`, { url }),
    run: (script, ...args) => call(driver.port, 'POST', `/session/${id}/execute/sync`, { script, args }),
    runAsync: (script, ...args) => call(driver.port, 'POST', `/session/${id}/execute/async`, { script, args }),
    async close () {
      await call(driver.port, 'DELETE', `/session/${id}`).catch(() => {})
      rmSync(profile, { recursive: true, force: true })
    }
  }
}

export function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 0 ? (sorted[middle - 1] + sorted[middle]) / 2 : sorted[middle]
}

// "min-max" of `values`, with `digits` decimals.
export function spread (values, digits = 0) {
  return `${Math.min(...values).toFixed(digits)}-${Math.max(...values).toFixed(digits)}`
}
