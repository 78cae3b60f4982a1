// page-abuse: two of our pages in headless Chromium connect, reserve and
// chat through the relay while one host attacks it, against the same
// without an attack, in the same run.
//
// Each sample opens two fresh browsers on the page, clicks Connect in
// both, and reads in each page how long it took from the click to its
// reservation (the `browser-chat:reserved` User Timing mark, see
// web-peer/src/ui/marks.rs). Once each page lists the other and their
// link is direct and settled, the first page sends MESSAGES chat messages
// one after another; a message's latency is from the moment the first page
// sends it to the moment the second page shows it (its
// `browser-chat:chat <peer>` mark), both read as wall-clock time in their
// own page (one machine, one clock).
//
// The attacks are bench/src/bin/abuse_attack.rs, from 127.0.0.2, started
// before the sample and stopped after it; each is bounded by its own time
// limit too. Samples alternate the attacks and the quiet reference, so
// that whatever else the machine does falls on all alike.
//
// Usage: node page-abuse.mjs <our page URL> <relay /ws multiaddr>
//          <relay /tcp multiaddr> <relay STUN URL> <abuse-attack binary> [samples]
// Prints rows `metric<TAB>ours<TAB>reference<TAB>ratio` (ours: during the
// attack; reference: without); logs go to standard error.
// BENCH_ABUSE_ONLY=<attack name> runs that attack alone (and the quiet
// reference), to look into it.

import { spawn } from 'node:child_process'

import { WAIT, median, openBrowser, spread, startDriver } from './webdriver.mjs'

const STEP_TIMEOUT_MS = 60000
// How long an attack runs before the pages start: it fills what it can.
const ATTACK_WARMUP_MS = 3000
// Ours closes its relayed connections 3 s after the direct one is up;
// messages are timed after that, on the link a user chats over.
const SETTLE_MS = 3500
const MESSAGES = 5

const [pageUrl, relayWs, relayTcp, stun, attackerBin, samplesArg] = process.argv.slice(2)
if (pageUrl == null || relayWs == null || relayTcp == null || stun == null || attackerBin == null) {
  console.error('usage: node page-abuse.mjs <our page URL> <relay /ws multiaddr> <relay /tcp multiaddr> <relay STUN URL> <abuse-attack binary> [samples]')
  process.exit(2)
}
const samples = Number(samplesArg ?? 3)

// host:port of a /ip4/.../tcp/N multiaddr, of a URL, of a stun: URL.
const tcpOf = (addr) => {
  const [, , ip, , port] = addr.split('/')
  return `${ip}:${port}`
}
const httpHost = new URL(pageUrl).host
const stunHost = stun.replace(/^stun:/, '')

const ATTACKS = [
  {
    name: 'idle sockets on the TCP and WebSocket ports (256 each)',
    args: ['idle-sockets', '--target', tcpOf(relayWs), '--target', tcpOf(relayTcp), '--count', '256']
  },
  {
    name: 'idle and half-sent HTTP requests (2,000 each)',
    args: ['http', '--target', httpHost, '--count', '2000']
  },
  {
    name: 'a chat flood from one peer (4 KiB, as fast as it can)',
    args: ['chat-flood', '--relay', relayTcp]
  },
  {
    name: 'a STUN flood from one address (10,000 requests a second)',
    args: ['stun-flood', '--target', stunHost, '--per-second', '10000']
  }
].filter((attack) => process.env.BENCH_ABUSE_ONLY == null || attack.args[0] === process.env.BENCH_ABUSE_ONLY)

const mark = (name) => `performance.getEntriesByName('browser-chat:${name}').at(-1)`
// The wall-clock time of the latest mark `name`, or null.
const MARK_TIME = `
const entry = performance.getEntriesByName('browser-chat:' + arguments[0]).at(-1);
return entry == null ? null : performance.timeOrigin + entry.startTime;
`
// Sends `text` and returns the wall-clock time it was sent.
const SEND = `
document.getElementById('chat-input').value = arguments[0];
const at = performance.timeOrigin + performance.now();
document.getElementById('send').click();
return at;
`

async function check (result, what) {
  if (result?.error != null) {
    throw new Error(`${what}: ${result.error}${result.log != null ? '\n  ' + result.log.join('\n  ') : ''}`)
  }
  return result
}

// One sample: two pages, Connect, reservation times, message latencies.
async function sample (driver) {
  const a = await openBrowser(driver, STEP_TIMEOUT_MS)
  let b
  try {
    b = await openBrowser(driver, STEP_TIMEOUT_MS)
    const url = `${pageUrl.replace(/\/?$/, '/')}`
    await a.goto(url)
    await b.goto(url)
    for (const page of [a, b]) {
      await check(await page.runAsync(WAIT, "document.getElementById('relay-addr').value !== ''", STEP_TIMEOUT_MS), 'page ready')
    }
    const idA = await a.run("return document.getElementById('self-peer-id').textContent")
    const idB = await b.run("return document.getElementById('self-peer-id').textContent")
    await a.run("document.getElementById('connect').click()")
    await b.run("document.getElementById('connect').click()")
    const reserved = []
    for (const page of [a, b]) {
      await check(await page.runAsync(WAIT, `${mark('reserved')} != null`, STEP_TIMEOUT_MS), 'reservation')
      reserved.push(await page.run(`return ${mark('reserved')}.startTime - ${mark('connect')}.startTime`))
    }
    await check(await a.runAsync(WAIT, `${mark(`direct ${idB}`)} != null`, STEP_TIMEOUT_MS), 'first page: direct link')
    await check(await b.runAsync(WAIT, `${mark(`direct ${idA}`)} != null`, STEP_TIMEOUT_MS), 'second page: direct link')
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))
    const latencies = []
    for (let i = 0; i < MESSAGES; i++) {
      const before = await b.run(MARK_TIME, `chat ${idA}`)
      const sentAt = await a.run(SEND, `benchmark message ${i}`)
      await check(await b.runAsync(WAIT,
        `${mark(`chat ${idA}`)} != null && performance.timeOrigin + ${mark(`chat ${idA}`)}.startTime > ${before ?? 0}`,
        STEP_TIMEOUT_MS),
      `message ${i} shown`)
      latencies.push(await b.run(MARK_TIME, `chat ${idA}`) - sentAt)
    }
    return { reserved, latencies }
  } finally {
    await a.close()
    if (b != null) await b.close()
  }
}

// Starts the attacker; `stop()` ends it and resolves with its summary.
function startAttack (attack) {
  const child = spawn(attackerBin, attack.args, { stdio: ['pipe', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk) => { stderr += chunk })
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)))
  return {
    async stop () {
      child.kill('SIGTERM')
      const code = await exited
      const summary = stderr.trim().split('\n').at(-1) ?? ''
      if (code !== 0) throw new Error(`the attacker exited with ${code}: ${stderr.trim()}`)
      return summary
    },
    exitedEarly: () => child.exitCode != null
  }
}

const driver = await startDriver()
const quiet = { reserved: [], latencies: [] }
const attacked = ATTACKS.map(() => ({ reserved: [], latencies: [] }))
try {
  for (let i = 0; i < samples; i++) {
    const quietRun = await sample(driver)
    quiet.reserved.push(...quietRun.reserved)
    quiet.latencies.push(...quietRun.latencies)
    console.error(`sample ${i + 1}/${samples} without attack: reserved ${quietRun.reserved.map((v) => v.toFixed(0)).join('/')} ms, chat ${quietRun.latencies.map((v) => v.toFixed(0)).join(', ')} ms`)
    for (const [k, attack] of ATTACKS.entries()) {
      const running = startAttack(attack)
      await new Promise((resolve) => setTimeout(resolve, ATTACK_WARMUP_MS))
      if (running.exitedEarly()) {
        await running.stop()
        throw new Error(`the attack "${attack.name}" ended before the pages started`)
      }
      let run
      try {
        run = await sample(driver)
      } finally {
        console.error(`  ${await running.stop()}`)
      }
      attacked[k].reserved.push(...run.reserved)
      attacked[k].latencies.push(...run.latencies)
      console.error(`sample ${i + 1}/${samples} during ${attack.name}: reserved ${run.reserved.map((v) => v.toFixed(0)).join('/')} ms, chat ${run.latencies.map((v) => v.toFixed(0)).join(', ')} ms`)
    }
  }
} finally {
  driver.stop()
}

const ms = (value) => `${value.toFixed(0)} ms`
for (const [k, attack] of ATTACKS.entries()) {
  const { reserved, latencies } = attacked[k]
  for (const [what, during, without] of [
    ['Connect to reservation', reserved, quiet.reserved],
    [`chat message latency (${MESSAGES} a sample)`, latencies, quiet.latencies]
  ]) {
    const [md, mq] = [median(during), median(without)]
    console.log(`page under abuse: ${what} during ${attack.name} / without, median of ${during.length} (during ${spread(during)} ms, without ${spread(without)} ms)\t${ms(md)}\t${ms(mq)}\t${(md / mq).toFixed(2)}`)
  }
}
