// Relay processes for the page benchmarks that need more than one relay
// (federation-pair.mjs): each on 127.0.0.1 with every port picked by the
// OS, its addresses read from the banner it prints, and the peer ids of
// `--secret-key-seed` identities, so a federation file can name relays
// before they start. No npm package: Node's own crypto and fetch.

import { spawn } from 'node:child_process'
import { createPrivateKey, createPublicKey } from 'node:crypto'
import { mkdtempSync, openSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// How long a relay may take to print its addresses.
const START_TIMEOUT_MS = 20000

const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

function base58btc (bytes) {
  let number = BigInt('0x' + (Buffer.from(bytes).toString('hex') || '0'))
  let text = ''
  while (number > 0n) {
    text = BASE58[Number(number % 58n)] + text
    number /= 58n
  }
  for (const byte of bytes) {
    if (byte !== 0) break
    text = '1' + text
  }
  return text
}

// The peer id of the relay started with `--secret-key-seed=<seed>`: its
// ed25519 secret is 32 bytes, the first the seed, the rest zero
// (relay/src/state.rs, seeded_keypair). A libp2p peer id of an ed25519
// key is the identity multihash of the key's protobuf encoding (type 1,
// 32 bytes of data), in base58btc.
export function seededPeerId (seed) {
  const secret = Buffer.alloc(32)
  secret[0] = seed
  // PKCS#8 wrapping of a raw ed25519 secret (RFC 8410).
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), secret])
  const spki = createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }))
    .export({ format: 'der', type: 'spki' })
  const publicKey = spki.subarray(spki.length - 32)
  const protobuf = Buffer.concat([Buffer.from([0x08, 0x01, 0x12, 0x20]), publicKey])
  return base58btc(Buffer.concat([Buffer.from([0x00, protobuf.length]), protobuf]))
}

// The relays still running, stopped when this process exits.
const running = new Set()
process.on('exit', () => {
  for (const relay of running) relay.stop()
})

// Starts `binary` with `flags` (besides loopback, ports 0, a fresh state
// dir and `pageDir`), its standard error going to `log`. Resolves once it
// has printed its page URL, with its addresses:
//   { peerId, page, ws, tcp, stun, stop() }
export async function startRelay (binary, pageDir, flags, log) {
  const state = mkdtempSync(join(tmpdir(), 'bench-relay-'))
  const child = spawn(binary, [
    '--listen-ip=127.0.0.1', '--port=0', '--quic-port=0', '--websocket-port=0', '--webrtc-port=0',
    '--stun-port=0', '--http-port=0', `--state-dir=${join(state, 'state')}`, `--page-dir=${pageDir}`, ...flags
  ], {
    stdio: ['ignore', 'pipe', openSync(log, 'w')],
    env: { ...process.env, RUST_LOG: process.env.RELAY_LOG ?? 'warn' }
  })
  const relay = {
    child,
    stop () {
      running.delete(relay)
      child.kill('SIGKILL')
      rmSync(state, { recursive: true, force: true })
    }
  }
  running.add(relay)
  const lines = []
  const banner = await new Promise((resolve, reject) => {
    let buffered = ''
    const timer = setTimeout(() => reject(new Error(`the relay printed no page URL within ${START_TIMEOUT_MS} ms: see ${log}`)), START_TIMEOUT_MS)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`the relay exited (${code ?? signal}) before printing its page URL: see ${log}`))
    })
    child.stdout.on('data', (chunk) => {
      buffered += chunk
      const parts = buffered.split('\n')
      buffered = parts.pop()
      lines.push(...parts)
      if (lines.some((line) => line.startsWith('Page: '))) {
        clearTimeout(timer)
        resolve(lines)
      }
    })
  }).catch((err) => {
    relay.stop()
    throw err
  })
  // Keep reading, so the relay never blocks on a full pipe.
  child.stdout.resume()
  const find = (pattern) => banner.find((line) => pattern.test(line))
  Object.assign(relay, {
    peerId: find(/^Relay \S+ is up/)?.split(' ')[1],
    page: find(/^Page: /)?.slice('Page: '.length),
    ws: find(/^\/ip4\/.*\/ws\/p2p\//),
    tcp: find(/^\/ip4\/[^/]+\/tcp\/\d+\/p2p\//),
    stun: find(/^STUN: /)?.slice('STUN: '.length).split(' ')[0]
  })
  for (const field of ['peerId', 'page', 'ws', 'tcp']) {
    if (relay[field] == null) {
      relay.stop()
      throw new Error(`the relay printed no ${field} address: see ${log}\n${banner.join('\n')}`)
    }
  }
  return relay
}

// `GET <relay's page URL><path>` as JSON.
export async function relayJson (relay, path) {
  const response = await fetch(new URL(path, relay.page), { signal: AbortSignal.timeout(10000) })
  if (!response.ok) throw new Error(`GET ${path}: ${response.status}`)
  return response.json()
}
