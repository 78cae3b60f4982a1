// page-load: time until a page is interactive in headless Chromium, ours
// against the js-libp2p page, several loads each, median reported.
//
// It speaks WebDriver (plain JSON over HTTP) to chromedriver with Node's
// own fetch, so it needs no npm package. Each load gets a new browser with
// a fresh profile: a cold load, nothing cached.
//
// "Interactive" is the moment the page's libp2p node is up and a user can
// act, measured in the page (performance.now(), from navigation start):
//   ours:     #relay-addr is prefilled (the wasm has started its node,
//             mounted the UI and read /api/relay): Connect can be clicked;
//   js-libp2p: #peer-id is shown (createLibp2p() has returned).
//
// Usage: node page-load.mjs <our page URL> <js page file> <relay /ws multiaddr> [loads]
// Prints rows `metric<TAB>ours<TAB>reference<TAB>ratio` like the Rust
// benchmarks; logs go to standard error.

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--window-size=1200,900'
]
// Bound on one load: a page not interactive by then counts as a failure.
const LOAD_TIMEOUT_MS = 30000

const [ourUrl, jsPage, relayWs, loadsArg] = process.argv.slice(2)
if (ourUrl == null || jsPage == null || relayWs == null) {
  console.error('usage: node page-load.mjs <our page URL> <js page file> <relay /ws multiaddr> [loads]')
  process.exit(2)
}
// The js-libp2p page loads from a file:// URL (a secure context, as
// WebCrypto needs) and connects to the same relay.
const jsUrl = `${pathToFileURL(resolve(jsPage))}?relay=${encodeURIComponent(relayWs)}`
const loads = Number(loadsArg ?? 5)

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

async function webdriver (port, method, path, body) {
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

async function waitForDriver (port) {
  const deadline = Date.now() + 20000
  while (Date.now() < deadline) {
    try {
      const status = await webdriver(port, 'GET', '/status')
      if (status.ready) return
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`chromedriver did not answer on port ${port}`)
}

// Polls in the page every 5 ms until `condition` holds and returns
// performance.now() at that moment.
const MEASURE = `
const [condition, timeout, done] = arguments;
const check = new Function('return (' + condition + ')');
const started = performance.now();
(function poll () {
  if (check()) return done({ ms: performance.now() });
  if (performance.now() - started > timeout) return done({ error: 'not interactive' });
  setTimeout(poll, 5);
})();
`

async function timeToInteractive (port, url, condition) {
  const profile = mkdtempSync(join(tmpdir(), 'bench-chromium-'))
  const session = await webdriver(port, 'POST', '/session', {
    capabilities: {
      alwaysMatch: {
        'goog:chromeOptions': {
          binary: process.env.CHROMIUM ?? '/usr/bin/chromium',
          args: [...CHROMIUM_ARGS, `--user-data-dir=${profile}`]
        },
        timeouts: { script: LOAD_TIMEOUT_MS, pageLoad: LOAD_TIMEOUT_MS }
      }
    }
  })
  const id = session.sessionId
  try {
    // Navigation returns at the load event; the measure is taken in the
    // page, from navigation start, so the WebDriver round trips do not
    // count.
    await webdriver(port, 'POST', `/session/${id}/url`, { url })
    const result = await webdriver(port, 'POST', `/session/${id}/execute/async`, {
      script: MEASURE,
      args: [condition, LOAD_TIMEOUT_MS]
    })
    if (result.error != null) throw new Error(`${url}: ${result.error}`)
    return result.ms
  } finally {
    await webdriver(port, 'DELETE', `/session/${id}`).catch(() => {})
    rmSync(profile, { recursive: true, force: true })
  }
}

function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 0 ? (sorted[middle - 1] + sorted[middle]) / 2 : sorted[middle]
}

const port = await freePort()
const driver = spawn(process.env.CHROMEDRIVER ?? 'chromedriver', [`--port=${port}`], { stdio: 'ignore' })
try {
  await waitForDriver(port)
  const ours = []
  const theirs = []
  // Alternate the pages, so that whatever else the machine does falls on
  // both alike.
  for (let i = 0; i < loads; i++) {
    ours.push(await timeToInteractive(port, ourUrl, "document.getElementById('relay-addr').value !== ''"))
    theirs.push(await timeToInteractive(port, jsUrl, "document.getElementById('peer-id').textContent !== ''"))
    console.error(`load ${i + 1}/${loads}: ours ${ours.at(-1).toFixed(0)} ms, js-libp2p ${theirs.at(-1).toFixed(0)} ms`)
  }
  const oursMedian = median(ours)
  const theirsMedian = median(theirs)
  const spread = (values) => `${Math.min(...values).toFixed(0)}-${Math.max(...values).toFixed(0)}`
  console.log(`time to interactive, median of ${loads} cold loads (ours ${spread(ours)} ms, js ${spread(theirs)} ms) / js-libp2p page\t${oursMedian.toFixed(0)} ms\t${theirsMedian.toFixed(0)} ms\t${(oursMedian / theirsMedian).toFixed(2)}`)
} finally {
  driver.kill()
}
