// federation-pair: time from Connect to the first chat message between two
// of our pages in headless Chromium (or Firefox, BENCH_BROWSER=firefox),
// with the pages on two federated relays against both on one relay.
//
// It starts two relays itself (the relay binary given, loopback, every
// port picked by the OS): A and B, with known identities
// (`--secret-key-seed`) in one federation file, B told of A. Each serves
// the page from `page dir`. Once each lists the other in /api/relay, runs
// alternate the two setups (whatever else the machine does falls on both
// alike):
//   one relay       both pages opened from A and connected to A
//   two relays      the first page on A, the second opened from B and
//                   connected to B (its record and chat cross from one
//                   relay to the other; the direct link is dialed through
//                   the other page's relay)
// Each run: two fresh browsers, Connect clicked in the first and at once
// in the second; the first page sends a chat message the moment it lists
// the second. Each page's User Timing marks (web-peer/src/ui/marks.rs), in
// ms from its own Connect click: the other peer listed, the direct WebRTC
// connection up (both pages), the message shown (the receiving page).
// Medians over the runs, two relays / one relay.
//
// Usage: node federation-pair.mjs <relay binary> <page dir> <runs> [log dir]
// Prints rows `metric<TAB>ours<TAB>reference<TAB>ratio`; logs go to
// standard error. Exits 1 when a run fails (its rows still printed, the
// failures counted in them), so a broken measurement is never a number.

import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { METRIC_PREFIX, WAIT, median, openBrowser, spread, startDriver } from './webdriver.mjs'
import { relayJson, seededPeerId, startRelay } from './relays.mjs'

// Bound on one run's wait for all its marks.
const RUN_TIMEOUT_MS = 60000
// Bound on the two relays listing each other.
const FEDERATE_TIMEOUT_MS = 30000
// The relays' identities (`--secret-key-seed`).
const SEEDS = [96, 97]
// Every page comes from this machine's one address, a reservation and a
// few circuits per run: the relays' per-IP limits are raised, as for
// browser-pair.mjs (scripts/bench).
const RELAY_LIMITS = ['--reservation-rate-per-ip=100000', '--max-reservations-per-ip=100000',
  '--circuit-rate-per-ip=100000', '--max-connections-per-ip=100000']

const [relayBinary, pageDir, runsArg, logDirArg] = process.argv.slice(2)
if (relayBinary == null || pageDir == null) {
  console.error('usage: node federation-pair.mjs <relay binary> <page dir> [runs] [log dir]')
  process.exit(2)
}
const runs = Number(runsArg ?? 10)
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`runs must be a positive integer, not ${runsArg}`)
  process.exit(2)
}
const logDir = logDirArg ?? 'artifacts'
mkdirSync(logDir, { recursive: true })

// Started in the sending page, without waiting: sends the message the
// moment the other page is listed (its peer-listed mark appears).
const SEND_WHEN_LISTED = `
const [other, message, timeout] = arguments;
const started = performance.now();
(function poll () {
  if (performance.getEntriesByName('browser-chat:peer-listed ' + other).length > 0) {
    document.getElementById('chat-input').value = message;
    document.getElementById('send').click();
    return;
  }
  if (performance.now() - started < timeout) setTimeout(poll, 5);
})();
`

// A page's marks, in ms from its own Connect click (each the latest of its
// name, with ` <the other's peer id>` where the page names the peer), or
// an error naming those missing after the wait, with the page's last log
// lines.
const READ_MARKS = `
const [other, required, timeout, done] = arguments;
const at = (name) => {
  const entry = performance.getEntriesByName(name + ' ' + other).at(-1) ?? performance.getEntriesByName(name).at(-1);
  return entry?.startTime;
};
const started = performance.now();
(function poll () {
  const missing = ['browser-chat:connect', ...required].filter((name) => at(name) == null);
  if (missing.length === 0) {
    const connect = at('browser-chat:connect');
    return done(Object.fromEntries(required.map((name) => [name.replace(/^browser-chat:/, ''), at(name) - connect])));
  }
  if (performance.now() - started > timeout) {
    const log = [...document.querySelectorAll('#event-log-lines li')].slice(-15).map((li) => li.textContent);
    return done({ error: 'marks missing: ' + missing.join(', '), log });
  }
  setTimeout(poll, 20);
})();
`

const REQUIRED = ['browser-chat:peer-listed', 'browser-chat:direct']

// One run: the first page on `first`, the second on `second` (relays).
async function pairRun (driver, first, second) {
  const a = await openBrowser(driver, RUN_TIMEOUT_MS * 2)
  let b
  try {
    b = await openBrowser(driver, RUN_TIMEOUT_MS * 2)
    const open = async (browser, relay) => {
      await browser.goto(relay.page)
      const ready = await browser.runAsync(WAIT, "document.getElementById('relay-addr').value !== ''", RUN_TIMEOUT_MS)
      if (ready.error != null) throw new Error(ready.error)
      await browser.run(`document.getElementById('relay-addr').value = ${JSON.stringify(relay.ws)}`)
      return browser.run("return document.getElementById('self-peer-id').textContent")
    }
    const idA = await open(a, first)
    const idB = await open(b, second)
    const message = `first message ${idA}`
    await a.run(SEND_WHEN_LISTED, idB, message, RUN_TIMEOUT_MS)
    await a.run("document.getElementById('connect').click()")
    await b.run("document.getElementById('connect').click()")
    const [marksA, marksB] = await Promise.all([
      a.runAsync(READ_MARKS, idB, REQUIRED, RUN_TIMEOUT_MS),
      b.runAsync(READ_MARKS, idA, [...REQUIRED, 'browser-chat:chat'], RUN_TIMEOUT_MS)
    ])
    if (marksA.error != null || marksB.error != null) {
      throw new Error(`first page: ${marksA.error ?? 'all marks'}\n  ${(marksA.log ?? []).join('\n  ')}\n` +
        `second page: ${marksB.error ?? 'all marks'}\n  ${(marksB.log ?? []).join('\n  ')}`)
    }
    return { pages: [marksA, marksB], chat: marksB.chat }
  } finally {
    await a.close()
    if (b != null) await b.close()
  }
}

// Waits until `relay`'s /api/relay lists `other` in its federation.
async function waitListed (relay, name, other) {
  const deadline = Date.now() + FEDERATE_TIMEOUT_MS
  let listed = []
  while (Date.now() < deadline) {
    try {
      const info = await relayJson(relay, '/api/relay')
      listed = (info.federation ?? []).map((member) => member.peer_id)
      if (listed.includes(other.peerId)) return
    } catch (err) {
      listed = [err.message]
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new Error(`relay ${name} does not list the other relay in /api/relay within ${FEDERATE_TIMEOUT_MS} ms (it lists ${JSON.stringify(listed)})`)
}

const state = mkdtempSync(join(tmpdir(), 'bench-federation-pair-'))
const members = join(state, 'federation')
writeFileSync(members, SEEDS.map((seed) => `${seededPeerId(seed)}\n`).join(''))
const relayFlags = (seed) => [`--secret-key-seed=${seed}`, `--federation-peers=${members}`, ...RELAY_LIMITS]
const setups = {
  one: { label: 'one relay', results: [], failures: 0 },
  two: { label: 'two federated relays', results: [], failures: 0 }
}
let relayA, relayB, driver
try {
  relayA = await startRelay(relayBinary, pageDir, relayFlags(SEEDS[0]), join(logDir, 'bench-federation-pair-relay-a.log'))
  relayB = await startRelay(relayBinary, pageDir, [...relayFlags(SEEDS[1]), `--federate=${relayA.tcp}`],
    join(logDir, 'bench-federation-pair-relay-b.log'))
  await waitListed(relayA, 'A', relayB)
  await waitListed(relayB, 'B', relayA)
  driver = await startDriver()
  const t = (value) => value == null ? '-' : value.toFixed(0)
  for (let i = 0; i < runs; i++) {
    for (const name of i % 2 === 0 ? ['one', 'two'] : ['two', 'one']) {
      const setup = setups[name]
      try {
        const result = await pairRun(driver, relayA, name === 'one' ? relayA : relayB)
        setup.results.push(result)
        const [pa, pb] = result.pages
        console.error(`${setup.label} run ${i + 1}/${runs}: listed ${t(pa['peer-listed'])}/${t(pb['peer-listed'])} ms, ` +
          `direct ${t(pa.direct)}/${t(pb.direct)} ms, chat ${t(result.chat)} ms`)
      } catch (err) {
        setup.failures++
        console.error(`${setup.label} run ${i + 1}/${runs} failed: ${err.message}`)
      }
    }
  }
} finally {
  driver?.stop()
  relayB?.stop()
  relayA?.stop()
  rmSync(state, { recursive: true, force: true })
}

// --- Rows: two federated relays (ours) against one relay (the reference).

const { one, two } = setups
const failed = one.failures + two.failures
const failedRuns = failed > 0 ? `; failed runs: one relay ${one.failures}, two ${two.failures}` : ''
function row (what, pick) {
  const metric = `${METRIC_PREFIX}federation (pages): Connect to ${what}, pages on two federated relays / on one relay, ${runs} runs each`
  const [ours, reference] = [pick(two.results), pick(one.results)]
  if (ours.length === 0 || reference.length === 0) {
    console.log(`${metric}${failedRuns}\t- (failed: see the log above)\t-\t-`)
    return
  }
  const [mo, mr] = [median(ours), median(reference)]
  console.log(`${metric}, median of ${ours.length} (two ${spread(ours)}, one ${spread(reference)} ms)${failedRuns}` +
    `\t${mo.toFixed(0)} ms\t${mr.toFixed(0)} ms\t${(mo / mr).toFixed(2)}`)
}
const bothPages = (moment) => (results) => results.flatMap((r) => r.pages.map((page) => page[moment]))
row('the first chat message shown (receiving page)', (results) => results.map((r) => r.chat))
row('the other peer listed (both pages)', bothPages('peer-listed'))
row('direct WebRTC connection up (both pages)', bothPages('direct'))

if (failed > 0) {
  console.error(`federation-pair: ${failed} run(s) failed`)
  process.exit(1)
}
