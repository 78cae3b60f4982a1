// browser-pair: two pages in headless Chromium (or Firefox, with
// BENCH_BROWSER=firefox) meet through the relay, ours against the js-libp2p
// chat page (e2e/js-peer/chat.html) in the same browser, in the same run.
//
// Part 3, time to a direct browser link, in two cases:
//   simultaneous  both pages open, Connect clicked in both; the first sends
//                 a chat message as soon as it lists the other;
//   late joiner   the first page connects and holds its reservation for
//                 2 s, then the second opens and connects; the first sends
//                 the message as soon as it lists the newcomer.
// The pages record User Timing marks (see web-peer/src/ui/marks.rs; the js
// page records the same), read here after the run, each measured from the
// Connect click that counts (simultaneous: each page's own; late joiner:
// the newcomer's, for both pages):
//   relay-connected  the connection to the relay is up (WebSocket, noise, yamux)
//   reserved      an address through the relay (a reservation held)
//   peer-listed   the other page is in its list (its discovery record came)
//   direct        the direct WebRTC connection with it is up
//   chat          the message is shown (in the receiving page only)
// and the phases between them (web-peer/src/timing.rs,
// webrtc-p2p/src/timing.rs; the js page's chat.js and phase-marks.js):
// WebRTC-direct's descriptions set, Noise done and the server ready; the
// node's relay connection, reservation, record received, circuit up; the
// dialer's offer made (while its signaling stream opens), the signaling
// stream, SDP offer, SDP answer, ICE connected; the direct
// connection in the swarm. Each is printed as a row of its own, ours
// beside js-libp2p's ("-" where the js page has no such moment).
// Runs alternate ours and js-libp2p, so whatever else the machine does falls
// on both alike. All runs are made once over each relay address given (the
// relay's /ws one and its /webrtc-direct one): both pages of a run reach
// the relay over that transport, ours and js-libp2p's alike.
// BENCH_PAIR_MODES=simultaneous (or late) runs one case only.
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
// into it; BENCH_PAIR_MARKS=1 logs every mark of both pages of each run
// at its UTC time (to set beside a relay's debug log).

import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

import { METRIC_PREFIX, WAIT, median, openBrowser, spread, startDriver } from './webdriver.mjs'

// Bound on one run's wait for all its marks, and on one perf transfer.
const RUN_TIMEOUT_MS = 60000
// How long the first page holds its reservation before the late joiner
// opens: long enough for its first announcements and the relay's mesh to
// settle, so the newcomer meets a page that has been there a while.
const LATE_JOINER_WAIT_MS = 2000
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

// The moments read from each page, each the latest mark of that name
// (with ` <the other's peer id>` where the page names the peer, else
// without). `required` ones are waited for; the others are the phase
// breakdown: the node's own marks (web-peer/src/timing.rs) and the WebRTC
// crate's (webrtc-p2p/src/timing.rs); the js page makes the same where
// js-libp2p shows them (e2e/js-peer/src/chat.js, phase-marks.js).
const REQUIRED = ['browser-chat:relay-connected', 'browser-chat:reserved', 'browser-chat:peer-listed', 'browser-chat:direct']
const PHASES = [
  'libp2p-webrtc-direct:described', 'libp2p-webrtc-direct:noise', 'libp2p-webrtc-direct:grace-over',
  'libp2p-webrtc-direct:ready', 'browser-chat:node:relay-connection', 'browser-chat:node:reservation',
  'browser-chat:node:record', 'browser-chat:node:circuit', 'libp2p-webrtc:local-offer', 'libp2p-webrtc:signaling', 'libp2p-webrtc:offer',
  'libp2p-webrtc:answer', 'libp2p-webrtc:connected', 'browser-chat:node:direct'
]

// A page's moments as epoch milliseconds (performance.timeOrigin plus the
// mark's time: both browsers run on this machine, so the times of two
// pages compare), or an error naming the ones missing after the wait.
const READ_MARKS = `
const [other, required, optional, timeout, done] = arguments;
const at = (name) => {
  const entry = performance.getEntriesByName(name + ' ' + other).at(-1) ?? performance.getEntriesByName(name).at(-1);
  return entry == null ? undefined : performance.timeOrigin + entry.startTime;
};
const started = performance.now();
(function poll () {
  const missing = ['browser-chat:connect', ...required].filter((name) => at(name) == null);
  if (missing.length === 0) {
    return done(Object.fromEntries([...required, ...optional, 'browser-chat:connect']
      .map((name) => [name, at(name)]).filter(([, time]) => time != null)));
  }
  if (performance.now() - started > timeout) {
    const log = [...document.querySelectorAll('#event-log-lines li, #log li')].slice(-15).map((li) => li.textContent);
    return done({ error: 'marks missing: ' + missing.join(', '), log });
  }
  setTimeout(poll, 20);
})();
`

// Every User Timing mark of a page, as "<UTC time> <name>".
const ALL_MARKS = `
return performance.getEntriesByType('mark')
  .map((entry) => new Date(performance.timeOrigin + entry.startTime).toISOString() + ' ' + entry.name);
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

// One run of `kind` in `mode`: two browsers, Connect in both, the marks
// of each; with `perf`, the transfers too.
//   simultaneous  both pages are open, Connect is clicked in one, then at
//                 once in the other; each page's times count from its own
//                 Connect click
//   late          the first page connects and holds its reservation for
//                 LATE_JOINER_WAIT_MS before the second page is opened and
//                 connects; both pages' times count from the newcomer's
//                 Connect click
// In both, the first page sends the message the moment it lists the other.
async function pairRun (driver, relay, kind, mode, withPerf) {
  const page = kinds(relay)[kind]
  const a = await openBrowser(driver, PERF_TIMEOUT_MS)
  let b
  try {
    b = await openBrowser(driver, PERF_TIMEOUT_MS)
    const open = async (browser) => {
      await browser.goto(page.url)
      await check(await browser.runAsync(WAIT, page.ready, RUN_TIMEOUT_MS))
      if (page.setRelay != null) await browser.run(page.setRelay)
      return browser.run(page.peerId)
    }
    const idA = await open(a)
    let idB
    if (mode === 'late') {
      await a.run("document.getElementById('connect').click()")
      await check(await a.runAsync(WAIT, "performance.getEntriesByName('browser-chat:reserved').length > 0", RUN_TIMEOUT_MS))
      await new Promise((resolve) => setTimeout(resolve, LATE_JOINER_WAIT_MS))
      idB = await open(b)
      await a.run(SEND_WHEN_LISTED, idB, MESSAGE, page.send, RUN_TIMEOUT_MS)
    } else {
      idB = await open(b)
      await a.run(SEND_WHEN_LISTED, idB, MESSAGE, page.send, RUN_TIMEOUT_MS)
      await a.run("document.getElementById('connect').click()")
    }
    await b.run("document.getElementById('connect').click()")
    const readA = await a.runAsync(READ_MARKS, idB, REQUIRED, PHASES, RUN_TIMEOUT_MS)
    const readB = await b.runAsync(READ_MARKS, idA, [...REQUIRED, 'browser-chat:chat'], PHASES, RUN_TIMEOUT_MS)
    if (readA.error != null || readB.error != null) {
      throw new Error(`first page: ${readA.error ?? 'all marks'}\n  ${(readA.log ?? []).join('\n  ')}\n` +
        `second page: ${readB.error ?? 'all marks'}\n  ${(readB.log ?? []).join('\n  ')}`)
    }
    // In ms from the Connect click that counts (see above).
    const relative = (marks, from) => Object.fromEntries(Object.entries(marks)
      .map(([name, time]) => [name.replace(/^browser-chat:/, ''), time - from]))
    const newcomerConnect = readB['browser-chat:connect']
    const [marksA, marksB] = mode === 'late'
      ? [relative(readA, newcomerConnect), relative(readB, newcomerConnect)]
      : [relative(readA, readA['browser-chat:connect']), relative(readB, newcomerConnect)]
    const result = { pages: [marksA, marksB], chat: marksB.chat }
    if (process.env.BENCH_PAIR_MARKS === '1') {
      // Every mark of both pages at its wall-clock time, to set beside a
      // relay's log (RUST_LOG=debug prints UTC times to the microsecond).
      for (const [name, browser] of [['first', a], ['second', b]]) {
        const marks = await browser.run(ALL_MARKS)
        console.error(`  ${name} page's marks:\n    ${marks.join('\n    ')}`)
      }
    }
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

const MODES = (process.env.BENCH_PAIR_MODES ?? 'simultaneous,late').split(',')
const driver = await startDriver()
// Per relay address and mode: the runs of each kind, and how many failed.
const cases = relays.flatMap((relay, r) => MODES.map((mode) => ({
  relay, r, mode, results: { ours: [], js: [] }, failures: { ours: 0, js: 0 }
})))
const t = (value) => value == null ? '-' : value.toFixed(0)
try {
  for (const { relay, r, mode, results, failures } of cases) {
    const transport = transportOf(relay)
    for (let i = 0; i < runs; i++) {
      const order = (i % 2 === 0 ? ['ours', 'js'] : ['js', 'ours'])
        .filter((k) => (process.env.BENCH_PAIR_ONLY ?? k) === k)
      for (const kind of order) {
        try {
          const withPerf = r === 0 && mode === MODES[0] && i >= runs - 2 && results[kind].every((run) => run.upload == null)
          const result = await pairRun(driver, relay, kind, mode, withPerf)
          results[kind].push(result)
          const [pa, pb] = result.pages
          const both = (name) => `${t(pa[name])}/${t(pb[name])}`
          console.error(`${transport} ${mode} run ${i + 1}/${runs} ${kind}: relay ${both('relay-connected')} ms, reserved ${both('reserved')} ms, listed ${both('peer-listed')} ms, direct ${both('direct')} ms, chat ${t(result.chat)} ms`)
          console.error(`  phases: ${PHASES.map((name) => `${name.replace(/^browser-chat:/, '')} ${both(name.replace(/^browser-chat:/, ''))}`).join(', ')}`)
        } catch (err) {
          failures[kind]++
          console.error(`${transport} ${mode} run ${i + 1}/${runs} ${kind} failed: ${err.message}`)
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

// The phase breakdown: each phase's median over the pages that marked it
// (a dialer's and a listener's WebRTC phases differ; "-" where the js page
// has no such moment; no row where neither page has it, as WebRTC-direct's
// phases over WebSocket).
function phaseRow (metric, values) {
  if (values.ours.length === 0 && values.js.length === 0) return
  const part = (list) => list.length === 0 ? '-' : `${median(list).toFixed(0)} ms`
  const ratio = values.ours.length > 0 && values.js.length > 0 ? (median(values.ours) / median(values.js)).toFixed(2) : '-'
  console.log(`${METRIC_PREFIX}${metric}\t${part(values.ours)}\t${part(values.js)}\t${ratio}`)
}

for (const { relay, mode, results, failures } of cases) {
  const over = `relay over ${transportOf(relay)}`
  const from = mode === 'late'
    ? `late joiner (the first page held its reservation for ${LATE_JOINER_WAIT_MS / 1000} s), the newcomer's Connect`
    : 'simultaneous, Connect'
  const perPage = (kind, moment) => results[kind].flatMap((r) => r.pages.map((p) => p[moment])).filter((v) => v != null)
  // The late joiner's own relay connection and reservation (the first
  // page's came seconds before its Connect).
  const newcomer = (kind, moment) => results[kind].map((r) => r.pages[1][moment]).filter((v) => v != null)
  const pagesOf = (moment) => mode === 'late' && ['relay-connected', 'reserved'].includes(moment) ? 'the newcomer' : 'both pages'
  const values = (kind, moment) => pagesOf(moment) === 'the newcomer' ? newcomer(kind, moment) : perPage(kind, moment)
  const failedRuns = failures.ours + failures.js > 0 ? `; failed runs: ours ${failures.ours}, js ${failures.js}` : ''
  for (const [moment, label] of [
    ['relay-connected', 'relay connection up'],
    ['reserved', 'reservation held'],
    ['peer-listed', 'the other peer listed'],
    ['direct', 'direct WebRTC connection up']
  ]) {
    row(`browser link (${over}), ${from} to ${label}, ${pagesOf(moment)} of ${runs} runs${failedRuns}`,
      { ours: values('ours', moment), js: values('js', moment) }, ms, 0, 'ms')
  }
  row(`browser link (${over}), ${from} to the first chat message shown, receiving page of ${runs} runs${failedRuns}`,
    { ours: results.ours.map((r) => r.chat), js: results.js.map((r) => r.chat) }, ms, 0, 'ms')
  for (const phase of PHASES) {
    const name = phase.replace(/^browser-chat:/, '')
    // Late joiner: the newcomer's, as the first page's relay phases came
    // before the newcomer's Connect.
    const pages = mode === 'late' ? newcomer : perPage
    phaseRow(`phase (${over}), ${from} to ${name}, ${mode === 'late' ? 'the newcomer' : 'both pages'}, median of those that marked it`,
      { ours: pages('ours', name), js: pages('js', name) })
  }
}
const { results } = cases[0]
const perfRuns = (kind, direction) => results[kind].flatMap((r) => r[direction] ?? [])
for (const direction of ['upload', 'download']) {
  row(`browser-to-browser throughput, perf ${direction} of ${perfBytes / 1e6} MB on one stream of the direct WebRTC connection`,
    { ours: perfRuns('ours', direction), js: perfRuns('js', direction) }, mbps, 1, 'MB/s')
}
