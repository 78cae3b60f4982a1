// WebDriver (plain JSON over HTTP) to chromedriver or geckodriver with
// Node's own fetch, for the browser benchmarks (page-load.mjs,
// browser-pair.mjs): no npm package. Every session is a new headless
// browser with a fresh profile: Chromium, or Firefox with
// BENCH_BROWSER=firefox.

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { constants, tmpdir } from 'node:os'
import { join } from 'node:path'

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // WebRTC on loopback: host candidates with their IP, not an mDNS name.
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--window-size=1200,900'
]

// Firefox's preferences, as the e2e tests set them (e2e/src/firefox.rs):
// host candidates with their IP, no background requests.
export const FIREFOX_PREFS = {
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'browser.safebrowsing.update.enabled': false,
  'app.update.enabled': false,
  'datareporting.policy.dataSubmissionEnabled': false
}

// The browser under test: BENCH_BROWSER, chromium by default.
export const BROWSER = process.env.BENCH_BROWSER ?? 'chromium'
if (!['chromium', 'firefox'].includes(BROWSER)) {
  throw new Error(`BENCH_BROWSER must be chromium or firefox, not ${BROWSER}`)
}
// Prefixed to the metrics of a Firefox run, so its rows stand apart.
export const METRIC_PREFIX = BROWSER === 'firefox' ? '[Firefox] ' : ''

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

// The WebDriver servers still running. Each is the leader of its own
// process group, so stopping one also stops the browsers it started; and
// they are all stopped when this process exits or is told to stop, so an
// interrupted benchmark leaves no driver or browser behind.
const runningServers = new Set()

function stopAllServers () {
  for (const server of runningServers) server.stop()
}

process.on('exit', stopAllServers)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    stopAllServers()
    process.exit(128 + constants.signals[signal])
  })
}

// A WebDriver server child process on a free port; `stop()` kills it and
// every browser it started.
async function startServer (binary, args) {
  const port = await freePort()
  const child = spawn(binary, [...args(port)], { stdio: 'ignore', detached: true })
  const server = {
    port,
    stop () {
      runningServers.delete(server)
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {}
    }
  }
  runningServers.add(server)
  const deadline = Date.now() + 20000
  while (Date.now() < deadline) {
    try {
      const status = await call(port, 'GET', '/status')
      if (status.ready) return server
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  server.stop()
  throw new Error(`${binary} did not answer on port ${port}`)
}

// The driver of BROWSER. chromedriver runs every session; geckodriver runs
// one session at a time, so each Firefox gets one of its own (started by
// openBrowser) and this one starts nothing.
// Run with `runAsync(WAIT, condition, timeoutMs)`: polls in the page every
// 5 ms until the expression `condition` holds; on time-out the error
// carries the last lines of our page's event log, if it has one.
export const WAIT = `
const [condition, timeout, done] = arguments;
const check = new Function('return (' + condition + ')');
const started = performance.now();
(function poll () {
  let ok = false;
  try { ok = check(); } catch {}
  if (ok) return done({});
  if (performance.now() - started > timeout) {
    const log = [...document.querySelectorAll('#event-log-lines li')].slice(-15).map((li) => li.textContent);
    return done({ error: 'timed out waiting until ' + condition, log });
  }
  setTimeout(poll, 5);
})();
`

export async function startDriver () {
  if (BROWSER === 'firefox') return { stop: () => {} }
  return startServer(process.env.CHROMEDRIVER ?? 'chromedriver', (port) => [`--port=${port}`])
}

function capabilities (profile, timeoutMs) {
  const timeouts = { script: timeoutMs, pageLoad: timeoutMs }
  if (BROWSER === 'firefox') {
    return {
      'moz:firefoxOptions': {
        binary: process.env.FIREFOX ?? '/usr/bin/firefox-esr',
        args: ['-headless', '-profile', profile],
        prefs: FIREFOX_PREFS
      },
      timeouts
    }
  }
  return {
    'goog:chromeOptions': {
      binary: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: [...CHROMIUM_ARGS, `--user-data-dir=${profile}`]
    },
    timeouts
  }
}

// One browser: `goto(url)`, `run(script, ...args)` (synchronous script),
// `runAsync(script, ...args)` (the last argument is the callback),
// `throttle(conditions)` (Chromium), `close()`.
export async function openBrowser (driver, timeoutMs) {
  const profile = mkdtempSync(join(tmpdir(), `bench-${BROWSER}-`))
  let server = driver
  let session
  try {
    if (BROWSER === 'firefox') {
      // --websocket-port: not the default 9222, which Firefoxes side by
      // side would fight over.
      server = await startServer(process.env.GECKODRIVER ?? 'geckodriver',
        (port) => [`--port=${port}`, '--websocket-port=0'])
    }
    session = await call(server.port, 'POST', '/session', {
      capabilities: { alwaysMatch: capabilities(profile, timeoutMs) }
    })
    if (BROWSER === 'firefox') {
      // Chromium's --window-size; Firefox 153 has no such flag.
      await call(server.port, 'POST', `/session/${session.sessionId}/window/rect`, { width: 1200, height: 900 })
    }
  } catch (err) {
    if (server !== driver) server.stop()
    rmSync(profile, { recursive: true, force: true })
    throw err
  }
  const id = session.sessionId
  const port = server.port
  return {
    goto: (url) => call(port, 'POST', `/session/${id}/url`, { url }),
    run: (script, ...args) => call(port, 'POST', `/session/${id}/execute/sync`, { script, args }),
    runAsync: (script, ...args) => call(port, 'POST', `/session/${id}/execute/async`, { script, args }),
    // Chromium only: every later request of this browser goes through
    // DevTools' network emulation (`latency` in ms added to each round
    // trip, throughputs in bytes a second).
    throttle: (conditions) => call(port, 'POST', `/session/${id}/chromium/network_conditions`,
      { network_conditions: { offline: false, ...conditions } }),
    async close () {
      await call(port, 'DELETE', `/session/${id}`).catch(() => {})
      if (server !== driver) server.stop()
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
