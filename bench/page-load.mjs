// page-load: time until a page is interactive in headless Chromium (or
// Firefox, with BENCH_BROWSER=firefox), ours against the js-libp2p page in
// the same browser, several loads each, median reported.
//
// It speaks WebDriver to chromedriver or geckodriver through webdriver.mjs
// (Node's own fetch, no npm package). Three kinds of load, each page in a
// new browser with a fresh profile every time:
//   cold:    nothing cached;
//   warm:    the second visit: the page is opened, becomes interactive,
//            the browser goes to about:blank, and the page is opened again
//            and measured (what the HTTP cache and the engine's code cache
//            keep is in use). For our page it also counts the asset bytes
//            that came over the network again besides the HTML (Resource
//            Timing's transferSize: 0 when served from the cache): the
//            hashed assets are `immutable`, so a second visit should fetch
//            the HTML alone;
//   slow 4G: cold, through Chromium's network emulation with the numbers
//            of Lighthouse's mobile profile (150 ms added to each request,
//            1.6 Mbit/s down, 750 kbit/s up), where the bytes of the page
//            show. Milder than Lighthouse's own throttling, which adds its
//            150 ms per round trip of every connection. Chromium only.
//
// Both pages come over HTTP from 127.0.0.1 (a secure context, as
// WebCrypto needs), compressed: ours from the relay, as it serves it
// (precompressed brotli and gzip, `immutable` assets), the js-libp2p page
// from bench/static-server.mjs, which serves it the same way (brotli -q 11,
// the bundle cacheable, the HTML `no-cache`). The js page connects to the
// same relay.
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

import { basename, dirname } from 'node:path'

import { BROWSER, METRIC_PREFIX, median, openBrowser, spread, startDriver } from './webdriver.mjs'
import { serveStatic } from './static-server.mjs'

// Bound on one load: a page not interactive by then counts as a failure.
const LOAD_TIMEOUT_MS = 30000

// Lighthouse's mobile throttling numbers (latency in ms added to each
// request, throughputs in bytes a second).
const SLOW_4G = { latency: 150, download_throughput: 1_638_400 / 8, upload_throughput: 750_000 / 8 }

const [ourUrl, jsPage, relayWs, loadsArg] = process.argv.slice(2)
if (ourUrl == null || jsPage == null || relayWs == null) {
  console.error('usage: node page-load.mjs <our page URL> <js page file> <relay /ws multiaddr> [loads]')
  process.exit(2)
}
const loads = Number(loadsArg ?? 5)

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

// Bytes that came over the network for the page's assets other than the
// document itself, and how many such assets there were. The relay's API
// answers (`/api/relay`) are data, fetched on every visit on purpose: they
// are left out.
const TRANSFERRED = `
const done = arguments[arguments.length - 1];
const assets = performance.getEntriesByType('resource')
  .filter(entry => !new URL(entry.name).pathname.startsWith('/api/'));
done({
  bytes: assets.reduce((sum, entry) => sum + entry.transferSize, 0),
  fetched: assets.filter(entry => entry.transferSize > 0).map(entry => entry.name),
  count: assets.length,
});
`

async function measure (browser, url, condition) {
  // Navigation returns at the load event; the measure is taken in the
  // page, from navigation start, so the WebDriver round trips do not
  // count.
  await browser.goto(url)
  const result = await browser.runAsync(MEASURE, condition, LOAD_TIMEOUT_MS)
  if (result.error != null) throw new Error(`${url}: ${result.error}`)
  return result.ms
}

// One load of `kind` in a new browser.
async function timeToInteractive (driver, kind, url, condition) {
  const browser = await openBrowser(driver, LOAD_TIMEOUT_MS)
  try {
    if (kind.throttle != null) await browser.throttle(kind.throttle)
    if (!kind.warm) return { ms: await measure(browser, url, condition) }
    await measure(browser, url, condition)
    await browser.goto('about:blank')
    const ms = await measure(browser, url, condition)
    const transferred = await browser.runAsync(TRANSFERRED)
    return { ms, transferred }
  } finally {
    await browser.close()
  }
}

function row (what, ours, theirs) {
  const oursMedian = median(ours)
  const theirsMedian = median(theirs)
  console.log(`${METRIC_PREFIX}time to interactive, median of ${ours.length} ${what} loads (ours ${spread(ours)} ms, js ${spread(theirs)} ms) / js-libp2p page\t${oursMedian.toFixed(0)} ms\t${theirsMedian.toFixed(0)} ms\t${(oursMedian / theirsMedian).toFixed(2)}`)
}

const kinds = [
  { name: 'cold' },
  { name: 'warm', warm: true },
  ...(BROWSER === 'chromium'
    ? [{ name: 'cold slow 4G (150 ms a request, 1.6 Mbit/s down, 750 kbit/s up)', throttle: SLOW_4G }]
    : [])
]
const ourReady = "document.getElementById('relay-addr').value !== ''"
const jsReady = "document.getElementById('peer-id').textContent !== ''"
// The page and the bundle it loads (e2e/js-peer/index.html: dist/peer.js).
const jsServer = await serveStatic(dirname(jsPage), [basename(jsPage), 'dist/peer.js'])
const jsUrl = `${jsServer.url}${basename(jsPage)}?relay=${encodeURIComponent(relayWs)}`
const driver = await startDriver()
try {
  for (const kind of kinds) {
    const ours = []
    const theirs = []
    const transferred = []
    // Alternate the pages, so that whatever else the machine does falls on
    // both alike.
    for (let i = 0; i < loads; i++) {
      const load = await timeToInteractive(driver, kind, ourUrl, ourReady)
      ours.push(load.ms)
      if (load.transferred != null) transferred.push(load.transferred)
      theirs.push((await timeToInteractive(driver, kind, jsUrl, jsReady)).ms)
      console.error(`${kind.name} load ${i + 1}/${loads}: ours ${ours.at(-1).toFixed(0)} ms, js-libp2p ${theirs.at(-1).toFixed(0)} ms`)
    }
    row(kind.name, ours, theirs)
    if (transferred.length > 0) {
      for (const load of transferred.filter(load => load.bytes > 0)) {
        console.error(`a warm load fetched ${load.bytes} B again: ${load.fetched.join(', ')}`)
      }
      const most = Math.max(...transferred.map(load => load.bytes))
      console.log(`${METRIC_PREFIX}second visit: asset bytes fetched again besides the HTML, the most of ${loads} warm loads (${transferred[0].count} assets each) / none\t${most} B\t0 B\t-`)
    }
  }
} finally {
  driver.stop()
  jsServer.close()
}
