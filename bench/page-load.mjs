// page-load: time until a page is interactive in headless Chromium (or
// Firefox, with BENCH_BROWSER=firefox), ours against the js-libp2p page in
// the same browser, several loads each, median reported.
//
// It speaks WebDriver to chromedriver or geckodriver through webdriver.mjs
// (Node's own fetch, no npm package). Each load gets a new browser with
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

import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

import { METRIC_PREFIX, median, openBrowser, spread, startDriver } from './webdriver.mjs'

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

async function timeToInteractive (driver, url, condition) {
  const browser = await openBrowser(driver, LOAD_TIMEOUT_MS)
  try {
    // Navigation returns at the load event; the measure is taken in the
    // page, from navigation start, so the WebDriver round trips do not
    // count.
    await browser.goto(url)
    const result = await browser.runAsync(MEASURE, condition, LOAD_TIMEOUT_MS)
    if (result.error != null) throw new Error(`${url}: ${result.error}`)
    return result.ms
  } finally {
    await browser.close()
  }
}

const driver = await startDriver()
try {
  const ours = []
  const theirs = []
  // Alternate the pages, so that whatever else the machine does falls on
  // both alike.
  for (let i = 0; i < loads; i++) {
    ours.push(await timeToInteractive(driver, ourUrl, "document.getElementById('relay-addr').value !== ''"))
    theirs.push(await timeToInteractive(driver, jsUrl, "document.getElementById('peer-id').textContent !== ''"))
    console.error(`load ${i + 1}/${loads}: ours ${ours.at(-1).toFixed(0)} ms, js-libp2p ${theirs.at(-1).toFixed(0)} ms`)
  }
  const oursMedian = median(ours)
  const theirsMedian = median(theirs)
  console.log(`${METRIC_PREFIX}time to interactive, median of ${loads} cold loads (ours ${spread(ours)} ms, js ${spread(theirs)} ms) / js-libp2p page\t${oursMedian.toFixed(0)} ms\t${theirsMedian.toFixed(0)} ms\t${(oursMedian / theirsMedian).toFixed(2)}`)
} finally {
  driver.stop()
}
