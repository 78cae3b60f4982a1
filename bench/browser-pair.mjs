// browser-pair: two pages in headless Chromium (or Firefox, with
// BENCH_BROWSER=firefox) meet through the relay, ours against the js-libp2p
// chat page (e2e/js-peer/chat.html) in the same browser, in the same run.
//
// Part 3, time to a direct browser link. Each run opens two fresh browsers
// on the same page, clicks Connect in both, and has the first send a chat
// message as soon as it lists the other. The pages record User Timing
// marks (see web-peer/src/ui/marks.rs; the js page records the same), read
// here after the run, each measured in its page from its own Connect click:
//   relay-connected  the connection to the relay is up (WebSocket, noise, yamux)
//   reserved      an address through the relay (a reservation held)
//   peer-listed   the other page is in its list (its discovery record came)
//   direct        the direct WebRTC connection with it is up
//   chat          the message is shown (in the receiving page only)
// Runs alternate ours and js-libp2p, so whatever else the machine does falls
// on both alike. All runs are made once over each relay address given (the
// relay's /ws one and its /webrtc-direct one): both pages of a run reach
// the relay over that transport, ours and js-libp2p's alike.
//
// Part 4, browser-to-browser throughput. After the last run of each kind,
// the first page runs perf (`/perf/1.0.0`) transfers with the second over
// their direct connection (ours through `window.chatBench.perf`, with
// `?bench`; js through `window.jsChat.perf`): upload only, then download
// only, `repeats` times each, timed in the page.
//
// Usage: node browser-pair.mjs <our page URL> <js chat page file>
//          <relay multiaddrs, comma-separated> <relay STUN URL> <runs> <perf MB> <perf repeats>
// The perf transfers (over the direct link, whichever transport reached
// the relay) run with the first relay address only.
// Prints rows `metric<TAB>ours<TAB>reference<TAB>ratio`; logs go to
// standard error. BENCH_PAIR_ONLY=ours (or js) runs one kind only, to look
// into it.

import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

import { METRIC_PREFIX, median, openBrowser, spread, startDriver } from './webdriver.mjs'

// Bound on one run's wait for all its marks, and on one perf transfer.
const RUN_TIMEOUT_MS = 60000
const PERF_TIMEOUT_MS = 180000
const MESSAGE = 'hello from the benchmark'

const [ourUrl, jsPage, relaysArg, stun, runsArg, megabytesArg, repeatsArg] = process.argv.slice(2)
if (ourUrl == null || jsPage == null || relaysArg == null || stun == null) {
  console.error('usage: node browser-pair.mjs <our page URL> <js chat page file> <relay multiaddrs, comma-separated> <relay STUN URL> [runs] [perf MB] [perf repeats]')
  process.exit(2)
}
const relays = relaysArg.split(',').filter((addr) => addr !== '')
const transportOf = (relay) => relay.includes('/webrtc-direct/') ? 'WebRTC-direct' : relay.includes('/ws') ? 'WebSocket' : relay
// js-libp2p's pages run over both transports: over WebRTC-direct they
// need the relay to answer each stream's FIN with FIN_ACK, which it does
// on this project's libp2p-webrtc-utils (webrtc-utils/, README).
const runs = Number(runsArg ?? 10)
const perfBytes = Number(megabytesArg ?? 32) * 1e6
const repeats = Number(repeatsArg ?? 3)

// How each page is opened, read and driven, reaching the relay at `relay`.
const kinds = (relay) => ({
  ours: {
    url: `${ourUrl.replace(/\/?$/, '/')}?bench`,
    // Connect can be clicked once the relay address is prefilled; the
    // address of the transport under test replaces it, as if pasted.
    ready: "document.getElementById('relay-addr').value !== ''",
    setRelay: `document.getElementById('relay-addr').value = ${JSON.stringify(relay)}`,
    peerId: "return document.getElementById('self-peer-id').textContent",
    send: `document.getElementById('chat-input').value = arguments[0];
           document.getElementById('send').click()`,
    perf: 'window.chatBench.perf'
  },
  js: {
    // A file:// URL: a secure context, as WebCrypto needs.
    url: `${pathToFileURL(resolve(jsPage))}?relay=${encodeURIComponent(relay)}&ice=${encodeURIComponent(stun)}`,
    ready: "!document.getElementById('connect').disabled",
    setRelay: null,
    peerId: "return document.getElementById('peer-id').textContent",
    send: 'window.jsChat.send(arguments[0])',
    perf: 'window.jsChat.perf'
  }
})

// Polls in the page every 5 ms until `condition` holds.
const WAIT = `
const [condition, timeout, done] = arguments;
const check = new Function('return (' + condition + ')');
const started = performance.now();
(function poll () {
  let ok = false;
  try { ok = check(); } catch {}
  if (ok) return done({});
  if (performance.now() - started > timeout) return done({ error: 'timed out waiting until ' + condition });
  setTimeout(poll, 5);
})();
`

// Started in the sending page, without waiting: sends the message the
// moment the other page is listed (its peer-listed mark appears).
const SEND_WHEN_LISTED = `
const [other, message, sendScript, timeout] = arguments;
const send = new Function(sendScript);
const started = performance.now();
(function poll () {
  if (performance.getEntriesByName('browser-chat:peer-listed ' + other).length > 0) {
    try { send.call(null, message); } catch (err) { console.error('send failed', err); }
    return;
  }
  if (performance.now() - started < timeout) setTimeout(poll, 5);
})();
`

// The marks of a page, in ms from its Connect click, or an error naming
// the ones missing after the wait.
const READ_MARKS = `
const [other, wantChat, timeout, done] = arguments;
const names = ['relay-connected', 'reserved', 'peer-listed ' + other, 'direct ' + other];
if (wantChat) names.push('chat ' + other);
const at = (name) => performance.getEntriesByName('browser-chat:' + name).at(-1)?.startTime;
const started = performance.now();
(function poll () {
  const connect = at('connect');
  const missing = names.filter((name) => at(name) == null);
  if (connect != null && missing.length === 0) {
    return done(Object.fromEntries(names.map((name) => [name.split(' ')[0], at(name) - connect])));
  }
  if (performance.now() - started > timeout) {
    const log = [...document.querySelectorAll('#event-log-lines li, #log li')].slice(-15).map((li) => li.textContent);
    return done({ error: 'marks missing: ' + (connect == null ? 'connect ' : '') + missing.join(', '), log });
  }
  setTimeout(poll, 20);
})();
`

// One perf transfer from the page, retried while the page says the direct
// link is not ready (ours closes the relayed connection 3 s after the
// direct one is up, and only then runs perf on the direct one).
const PERF = `
const [perfFunction, peer, upload, download, done] = arguments;
const perf = new Function('return ' + perfFunction)();
const started = performance.now();
(async function attempt () {
  try {
    done({ ms: await perf(peer, upload, download) });
  } catch (err) {
    if (/direct/.test(err.message) && performance.now() - started < 20000) return setTimeout(attempt, 100);
    done({ error: err.message });
  }
})();
`

async function check (result) {
  if (result?.error != null) {
    throw new Error(`${result.error}${result.log != null ? '\n  ' + result.log.join('\n  ') : ''}`)
  }
  return result
}

// One run of `kind`: two browsers, Connect in both, the marks of each;
// with `perf`, the transfers too.
async function pairRun (driver, relay, kind, withPerf) {
  const page = kinds(relay)[kind]
  const a = await openBrowser(driver, PERF_TIMEOUT_MS)
  let b
  try {
    b = await openBrowser(driver, PERF_TIMEOUT_MS)
    await a.goto(page.url)
    await b.goto(page.url)
    for (const browser of [a, b]) await check(await browser.runAsync(WAIT, page.ready, RUN_TIMEOUT_MS))
    const idA = await a.run(page.peerId)
    const idB = await b.run(page.peerId)
    if (page.setRelay != null) for (const browser of [a, b]) await browser.run(page.setRelay)
    await a.run(SEND_WHEN_LISTED, idB, MESSAGE, page.send, RUN_TIMEOUT_MS)
    await a.run("document.getElementById('connect').click()")
    await b.run("document.getElementById('connect').click()")
    const readA = await a.runAsync(READ_MARKS, idB, false, RUN_TIMEOUT_MS)
    const readB = await b.runAsync(READ_MARKS, idA, true, RUN_TIMEOUT_MS)
    if (readA.error != null || readB.error != null) {
      throw new Error(`first page: ${readA.error ?? 'all marks'}\n  ${(readA.log ?? []).join('\n  ')}\n` +
        `second page: ${readB.error ?? 'all marks'}\n  ${(readB.log ?? []).join('\n  ')}`)
    }
    const [marksA, marksB] = [readA, readB]
    const result = { pages: [marksA, marksB], chat: marksB.chat }
    if (withPerf) {
      result.upload = []
      result.download = []
      for (let i = 0; i < repeats; i++) {
        for (const [direction, up, down] of [['upload', perfBytes, 0], ['download', 0, perfBytes]]) {
          const { ms } = await check(await a.runAsync(PERF, page.perf, idB, up, down))
          result[direction].push(perfBytes / 1e6 / (ms / 1000))
          console.error(`  ${kind} perf ${direction} ${perfBytes / 1e6} MB: ${ms.toFixed(0)} ms`)
        }
      }
    }
    return result
  } finally {
    await a.close()
    if (b != null) await b.close()
  }
}

const driver = await startDriver()
// Per relay address: the runs of each kind, and how many failed.
const byRelay = relays.map(() => ({ results: { ours: [], js: [] }, failures: { ours: 0, js: 0 } }))
try {
  for (const [r, relay] of relays.entries()) {
    const { results, failures } = byRelay[r]
    const transport = transportOf(relay)
    for (let i = 0; i < runs; i++) {
      const order = (i % 2 === 0 ? ['ours', 'js'] : ['js', 'ours'])
        .filter((k) => (process.env.BENCH_PAIR_ONLY ?? k) === k)
      for (const kind of order) {
        try {
          const withPerf = r === 0 && i >= runs - 2 && results[kind].every((run) => run.upload == null)
          const result = await pairRun(driver, relay, kind, withPerf)
          results[kind].push(result)
          const [pa, pb] = result.pages
          console.error(`${transport} run ${i + 1}/${runs} ${kind}: relay ${pa['relay-connected'].toFixed(0)}/${pb['relay-connected'].toFixed(0)} ms, reserved ${pa.reserved.toFixed(0)}/${pb.reserved.toFixed(0)} ms, listed ${pa['peer-listed'].toFixed(0)}/${pb['peer-listed'].toFixed(0)} ms, direct ${pa.direct.toFixed(0)}/${pb.direct.toFixed(0)} ms, chat ${result.chat.toFixed(0)} ms`)
        } catch (err) {
          failures[kind]++
          console.error(`${transport} run ${i + 1}/${runs} ${kind} failed: ${err.message}`)
        }
      }
    }
  }
} finally {
  driver.stop()
}

// --- Rows

const ms = (value) => `${value.toFixed(0)} ms`
const mbps = (value) => `${value.toFixed(1)} MB/s`

function row (metric, values, unit, digits, suffix) {
  const { ours, js } = values
  if (ours.length === 0 || js.length === 0) {
    const missing = ours.length === 0 ? 'ours' : 'js-libp2p'
    console.log(`${METRIC_PREFIX}${metric}\t- (failed: no ${missing} result, see the log above)\t-\t-`)
    return
  }
  const [mo, mj] = [median(ours), median(js)]
  const note = `median of ${ours.length} (ours ${spread(ours, digits)}, js ${spread(js, digits)} ${suffix})`
  console.log(`${METRIC_PREFIX}${metric}, ${note} / js-libp2p pages\t${unit(mo)}\t${unit(mj)}\t${(mo / mj).toFixed(2)}`)
}

for (const [r, relay] of relays.entries()) {
  const { results, failures } = byRelay[r]
  const over = `relay over ${transportOf(relay)}`
  const perPage = (kind, moment) => results[kind].flatMap((r) => r.pages.map((p) => p[moment]))
  const failedRuns = failures.ours + failures.js > 0 ? `; failed runs: ours ${failures.ours}, js ${failures.js}` : ''
  for (const [moment, label] of [
    ['relay-connected', 'relay connection up'],
    ['reserved', 'reservation held'],
    ['peer-listed', 'the other peer listed'],
    ['direct', 'direct WebRTC connection up']
  ]) {
    row(`browser link (${over}), Connect to ${label}, both pages of ${runs} runs${failedRuns}`,
      { ours: perPage('ours', moment), js: perPage('js', moment) }, ms, 0, 'ms')
  }
  row(`browser link (${over}), Connect to the first chat message shown, receiving page of ${runs} runs${failedRuns}`,
    { ours: results.ours.map((r) => r.chat), js: results.js.map((r) => r.chat) }, ms, 0, 'ms')
}
const { results } = byRelay[0]
const perfRuns = (kind, direction) => results[kind].flatMap((r) => r[direction] ?? [])
for (const direction of ['upload', 'download']) {
  row(`browser-to-browser throughput, perf ${direction} of ${perfBytes / 1e6} MB on one stream of the direct WebRTC connection`,
    { ours: perfRuns('ours', direction), js: perfRuns('js', direction) }, mbps, 1, 'MB/s')
}
