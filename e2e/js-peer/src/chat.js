// A js-libp2p chat page (libp2p 3.x, @libp2p/webrtc, @libp2p/gossipsub):
// the benchmarks' reference for our page (bench/browser-pair.mjs). It does
// what ours does, the js-libp2p way, with the same wire formats:
//
// - on Connect, it dials the relay (`?relay=<multiaddr>`, over /ws or
//   /webrtc-direct) and,
//   listening on `/p2p-circuit` and `/webrtc`, reserves a slot;
// - it announces its circuit addresses in a discovery record on
//   `_peer-discovery._p2p._pubsub` (the `Peer { publicKey, addrs }` record
//   of libp2p's pubsub peer discovery, as ours) when its address through
//   the relay appears, when a newcomer is listed, and every 20 s;
// - it lists every peer whose record was signed by that peer (gossipsub
//   strict signing, as our relay and page require), and the one with the
//   smaller peer id dials the other's `/p2p-circuit/webrtc` address;
// - it chats on `browser-chat/1`: one UTF-8 text message per gossipsub
//   message, at most 4096 bytes;
// - it serves the perf protocol (`/perf/1.0.0`) on direct connections.
//
// It records the same User Timing marks as ours (`browser-chat:connect`,
// `browser-chat:relay-connected`, `browser-chat:reserved`, `browser-chat:peer-listed <id>`,
// `browser-chat:direct <id>`, `browser-chat:chat <id>`), the node's phases
// where js-libp2p shows them (`browser-chat:node:relay-connection`,
// `:reservation`, `:record <id>`, `:circuit <id>`, `:direct <id>`: see
// web-peer/src/timing.rs) and the WebRTC phases (phase-marks.js), and the
// benchmarks drive it through `window.jsChat` (end of this file).
// @libp2p/pubsub-peer-discovery speaks the same record, but it announces
// only on a timer (the first record, sent at start, has no circuit
// address yet): the announcing here is written out to match ours.

// First: it wraps RTCPeerConnection before @libp2p/webrtc takes it.
import './phase-marks.js'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { webRTC, webRTCDirect } from '@libp2p/webrtc'
import { webSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const DISCOVERY_TOPIC = '_peer-discovery._p2p._pubsub'
const CHAT_TOPIC = 'browser-chat/1'
const ANNOUNCE_INTERVAL_MS = 20000
// As ours (network/src/config.rs): an announcement for a reason waits
// 1 ms (a timer: the rest of the turn's address changes), and at least
// 300 ms after the last one (an answer to a newcomer only the latter).
const ANNOUNCE_BATCH_MS = 1
const ANNOUNCE_MIN_GAP_MS = 300
const MAX_CHAT_BYTES = 4096
const MAX_RECORD_BYTES = 4096
const MAX_RECORD_ADDRS = 32
const PERF_PROTOCOL = '/perf/1.0.0'
const PERF_CHUNK = 64 * 1024
// The same bounds as our page's perf server.
const PERF_MAX_BYTES = 128 * 1024 * 1024
const PERF_MAX_STREAMS = 2

const $ = (id) => document.getElementById(id)

function log (line) {
  const item = document.createElement('li')
  item.textContent = `${new Date().toISOString().slice(11, 23)} ${line}`
  $('log').append(item)
  while ($('log').childElementCount > 300) $('log').firstElementChild.remove()
}

function setStatus (state, text) {
  $('status').dataset.state = state
  $('status').textContent = text ?? state
}

// One mark per name, the latest, as our page keeps them.
function mark (moment, peer) {
  const name = peer == null ? `browser-chat:${moment}` : `browser-chat:${moment} ${peer}`
  performance.clearMarks(name)
  performance.mark(name)
}

// --- The discovery record: protobuf `Peer { bytes publicKey = 1; repeated bytes addrs = 2; }`

function varint (value) {
  const bytes = []
  while (value >= 0x80) {
    bytes.push((value & 0x7f) | 0x80)
    value = Math.floor(value / 128)
  }
  bytes.push(value)
  return bytes
}

function encodeRecord (publicKey, addrs) {
  const parts = []
  const field = (tag, bytes) => parts.push(Uint8Array.from([tag, ...varint(bytes.length)]), bytes)
  field(0x0a, publicKey)
  for (const addr of addrs) field(0x12, addr)
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

// Returns { publicKey, addrs } or throws saying why not.
function decodeRecord (bytes) {
  if (bytes.length > MAX_RECORD_BYTES) throw new Error(`record of ${bytes.length} bytes`)
  let offset = 0
  const readVarint = () => {
    let value = 0
    let scale = 1
    for (;;) {
      if (offset >= bytes.length) throw new Error('truncated varint')
      const byte = bytes[offset++]
      value += (byte & 0x7f) * scale
      if ((byte & 0x80) === 0) return value
      scale *= 128
      if (scale > 2 ** 49) throw new Error('varint too long')
    }
  }
  let publicKey
  const addrs = []
  while (offset < bytes.length) {
    const tag = readVarint()
    if ((tag & 7) === 0) {
      readVarint()
      continue
    }
    if ((tag & 7) !== 2) throw new Error(`unexpected wire type ${tag & 7}`)
    const length = readVarint()
    if (offset + length > bytes.length) throw new Error('truncated field')
    const value = bytes.subarray(offset, offset + length)
    offset += length
    if (tag >> 3 === 1) publicKey = value
    else if (tag >> 3 === 2) addrs.push(value)
  }
  if (publicKey == null) throw new Error('no public key')
  if (addrs.length > MAX_RECORD_ADDRS) throw new Error(`${addrs.length} addresses`)
  return { publicKey: publicKeyFromProtobuf(publicKey), addrs: addrs.map((addr) => multiaddr(addr)) }
}

// --- The perf protocol (libp2p/specs perf/perf.md)

async function sendZeros (stream, count) {
  const chunk = new Uint8Array(PERF_CHUNK)
  let left = count
  while (left > 0) {
    const n = Math.min(left, PERF_CHUNK)
    if (!stream.send(n === PERF_CHUNK ? chunk : chunk.subarray(0, n))) {
      await stream.onDrain()
    }
    left -= n
  }
}

// Reads the stream to its end; calls `onBytes(Uint8Array)` for each chunk.
async function readAll (stream, onBytes) {
  for await (const chunk of stream) {
    onBytes(chunk instanceof Uint8Array ? chunk : chunk.subarray())
  }
}

async function servePerf (stream) {
  const header = new Uint8Array(8)
  let headerLength = 0
  let received = 0
  await readAll(stream, (bytes) => {
    const take = Math.min(8 - headerLength, bytes.length)
    header.set(bytes.subarray(0, take), headerLength)
    headerLength += take
    received += bytes.length - take
    if (received > PERF_MAX_BYTES) throw new Error(`upload over ${PERF_MAX_BYTES} bytes`)
  })
  if (headerLength < 8) throw new Error('the stream ended before the request')
  const toSend = new DataView(header.buffer).getBigUint64(0)
  if (toSend > BigInt(PERF_MAX_BYTES)) throw new Error(`asked for ${toSend} bytes; the limit is ${PERF_MAX_BYTES}`)
  await sendZeros(stream, Number(toSend))
  await stream.close()
  return { received, sent: Number(toSend) }
}

async function perfClient (conn, upload, download) {
  const stream = await conn.newStream(PERF_PROTOCOL, { signal: AbortSignal.timeout(10000) })
  try {
    const started = performance.now()
    const header = new Uint8Array(8)
    new DataView(header.buffer).setBigUint64(0, BigInt(download))
    stream.send(header)
    await sendZeros(stream, upload)
    await stream.close()
    let received = 0
    await readAll(stream, (bytes) => { received += bytes.length })
    if (received !== download) throw new Error(`asked for ${download} bytes, received ${received}`)
    return performance.now() - started
  } catch (err) {
    stream.abort(err)
    throw err
  }
}

// --- The node

const params = new URLSearchParams(window.location.search)
const peers = new Map() // peer id -> { addrs, listed }

// A direct connection is a WebRTC one that is not limited (a relayed
// circuit is).
const isDirect = (conn) => conn.limits == null && conn.remoteAddr.toString().includes('/webrtc')

async function start () {
  const iceServers = params.getAll('ice').map((urls) => ({ urls }))
  setStatus('starting')
  const node = await createLibp2p({
    addresses: { listen: ['/p2p-circuit', '/webrtc'] },
    transports: [
      webSockets(),
      webRTC({ rtcConfiguration: { iceServers } }),
      webRTCDirect(),
      circuitRelayTransport()
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // The benchmarks run on loopback over plain ws://, which browsers'
    // default gater refuses.
    connectionGater: { denyDialMultiaddr: () => false },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({ globalSignaturePolicy: 'StrictSign' })
    }
  })
  const pubsub = node.services.pubsub
  let relayPeer // the relay's peer id, once Connect was clicked
  $('peer-id').textContent = node.peerId.toString()
  log(`peer id ${node.peerId}`)

  const circuitAddrs = () => node.getMultiaddrs().filter((ma) => ma.toString().includes('/p2p-circuit'))

  let announceTimer
  let announcedAt = -Infinity
  const announce = () => {
    announceTimer = undefined
    const addrs = circuitAddrs()
    if (addrs.length === 0) return
    const record = encodeRecord(publicKeyToProtobuf(node.peerId.publicKey), addrs.map((ma) => ma.bytes))
    announcedAt = performance.now()
    pubsub.publish(DISCOVERY_TOPIC, record).catch((err) => log(`announcement not published: ${err.message}`))
  }
  const announceSoon = () => {
    const wait = Math.max(ANNOUNCE_BATCH_MS, announcedAt + ANNOUNCE_MIN_GAP_MS - performance.now())
    announceTimer ??= setTimeout(announce, wait)
  }
  // As ours: a newcomer's record is answered at once once the gap has
  // passed (nothing to batch), else after the rest of the gap.
  const answerNewcomer = () => {
    if (performance.now() - announcedAt >= ANNOUNCE_MIN_GAP_MS && circuitAddrs().length > 0) {
      clearTimeout(announceTimer)
      announce()
    } else {
      announceSoon()
    }
  }
  setInterval(announce, ANNOUNCE_INTERVAL_MS)

  const onRecord = (from, record) => {
    const peer = peerIdFromPublicKey(record.publicKey)
    if (!peer.equals(from)) throw new Error(`a record of ${peer} published by ${from}`)
    if (peer.equals(node.peerId)) return
    const id = peer.toString()
    const known = peers.has(id)
    peers.set(id, { addrs: record.addrs })
    if (known) return
    const item = document.createElement('li')
    item.dataset.peerId = id
    item.textContent = `${id} discovered`
    $('peers').append(item)
    mark('node:record', id)
    mark('peer-listed', id)
    log(`discovered ${id} (${record.addrs.length} addresses)`)
    answerNewcomer()
    // Of two pages, the one with the smaller peer id dials.
    const webrtc = record.addrs.find((ma) => ma.toString().includes('/p2p-circuit/webrtc'))
    if (webrtc != null && node.peerId.toString() < id) dialDirect(id, webrtc, 0)
  }

  // Like our page: up to 4 attempts, 5, 10, 20 s apart.
  const dialDirect = (id, webrtc, attempt) => {
    log(`dialing ${webrtc}`)
    node.dial(webrtc, { signal: AbortSignal.timeout(30000) }).catch((err) => {
      const retry = attempt < 3 && !node.getConnections().some((conn) => conn.remotePeer.toString() === id && isDirect(conn))
      log(`no direct connection with ${id}: ${err.message}${retry ? '; will retry' : ''}`)
      if (retry) setTimeout(() => dialDirect(id, webrtc, attempt + 1), 5000 * 2 ** attempt)
    })
  }

  // gossipsub's own event comes just before 'message', with the peer the
  // message came from (its sender, or a peer that forwarded it): the
  // e2e test reads it as the chat line's data-via.
  let propagationSource
  pubsub.addEventListener('gossipsub:message', ({ detail }) => {
    propagationSource = detail.propagationSource.toString()
  })
  pubsub.addEventListener('message', ({ detail: message }) => {
    if (message.type !== 'signed') return
    try {
      if (message.topic === DISCOVERY_TOPIC) {
        onRecord(message.from, decodeRecord(message.data))
      } else if (message.topic === CHAT_TOPIC) {
        if (message.data.length > MAX_CHAT_BYTES) throw new Error('chat message over 4096 bytes')
        const text = new TextDecoder('utf-8', { fatal: true }).decode(message.data)
        const item = document.createElement('li')
        item.textContent = `${message.from}: ${text}`
        item.dataset.from = message.from.toString()
        item.dataset.via = propagationSource ?? ''
        $('chat-log').append(item)
        mark('chat', message.from.toString())
      }
    } catch (err) {
      log(`ignored a message on ${message.topic} from ${message.from}: ${err.message}`)
    }
  })
  pubsub.subscribe(DISCOVERY_TOPIC)
  pubsub.subscribe(CHAT_TOPIC)

  node.addEventListener('connection:open', ({ detail: conn }) => {
    log(`connection open: ${conn.remotePeer} ${conn.remoteAddr} (${conn.direction}${conn.limits != null ? ', limited' : ''})`)
    const fromRelay = relayPeer != null && conn.remotePeer.toString() === relayPeer
    if (fromRelay) {
      mark('node:relay-connection')
      mark('relay-connected')
    }
    if (!fromRelay && conn.limits != null) mark('node:circuit', conn.remotePeer.toString())
    if (isDirect(conn)) {
      mark('node:direct', conn.remotePeer.toString())
      const item = $('peers').querySelector(`li[data-peer-id="${conn.remotePeer}"]`)
      if (item != null) item.textContent = `${conn.remotePeer} direct (WebRTC)`
      mark('direct', conn.remotePeer.toString())
    }
  })
  node.addEventListener('connection:close', ({ detail: conn }) => {
    log(`connection closed: ${conn.remotePeer} ${conn.remoteAddr}`)
  })
  // The circuit listener reports its reservation as `transport:listening`,
  // with the address already known; `self:peer:update` follows up to 1 s
  // later (libp2p debounces it).
  const onAddresses = () => {
    // Through whichever browser transport reached the relay: /ws or
    // /webrtc-direct (a circuit through its TCP or QUIC address is not
    // one another browser could dial).
    const first = circuitAddrs().find((ma) => /\/(ws|webrtc-direct)\//.test(ma.toString()))
    if (first != null && $('self-addr').textContent === '') {
      $('self-addr').textContent = first.toString()
      mark('node:reservation')
      mark('reserved')
      log(`listening on ${first}`)
      setStatus('ready')
      announceSoon()
    }
  }
  node.addEventListener('transport:listening', onAddresses)
  node.addEventListener('self:peer:update', onAddresses)

  let perfStreams = 0
  await node.handle(PERF_PROTOCOL, async (stream, conn) => {
    if (!isDirect(conn) || perfStreams >= PERF_MAX_STREAMS) {
      stream.abort(new Error('perf is served on direct connections, two at a time'))
      return
    }
    perfStreams++
    try {
      const { received, sent } = await servePerf(stream)
      log(`perf: ${received} bytes from ${conn.remotePeer}, ${sent} sent back`)
    } catch (err) {
      log(`perf stream from ${conn.remotePeer}: ${err.message}`)
      stream.abort(err)
    } finally {
      perfStreams--
    }
  }, { maxInboundStreams: PERF_MAX_STREAMS })

  $('relay-addr').value = params.get('relay') ?? ''
  $('connect').disabled = false
  $('connect').addEventListener('click', () => {
    mark('connect')
    const relay = $('relay-addr').value.trim()
    relayPeer = multiaddr(relay).getComponents().findLast((c) => c.name === 'p2p')?.value
    setStatus('connecting')
    log(`dialing the relay ${relay}`)
    node.dial(multiaddr(relay)).catch((err) => {
      setStatus('failed', `failed: ${err.message}`)
      log(`cannot reach the relay: ${err.message}`)
    })
  })
  setStatus('idle')
  return node
}

const ready = start().catch((err) => {
  setStatus('failed', `failed: ${err.message}`)
  log(`failed: ${err.stack ?? err}`)
  throw err
})

// What the benchmarks call.
window.jsChat = {
  // Publishes `text` on the chat topic.
  async send (text) {
    const node = await ready
    await node.services.pubsub.publish(CHAT_TOPIC, new TextEncoder().encode(text))
  },
  // Its open connections to `peer`, as the e2e tests read them.
  async connections (peer) {
    const node = await ready
    return node.getConnections().filter((conn) => conn.remotePeer.toString() === peer).map((conn) => ({
      peer: conn.remotePeer.toString(),
      remoteAddr: conn.remoteAddr.toString(),
      direction: conn.direction,
      limited: conn.limits != null,
      direct: isDirect(conn),
      status: conn.status
    }))
  },
  // What gossipsub knows of `peer`: whether it subscribes to the chat
  // topic, and whether a gossipsub stream from it (inbound) and one to it
  // (outbound: what publishing to it needs) are open.
  async gossip (peer) {
    const pubsub = (await ready).services.pubsub
    return {
      chatSubscriber: pubsub.getSubscribers(CHAT_TOPIC).some((id) => id.toString() === peer),
      inbound: pubsub.streamsInbound.has(peer),
      outbound: pubsub.streamsOutbound.has(peer)
    }
  },
  // One perf transfer with `peer` over its direct connection: `upload`
  // bytes up, then `download` bytes back; the time it took, in ms.
  async perf (peer, upload, download) {
    const node = await ready
    const conn = node.getConnections().find((conn) => conn.remotePeer.toString() === peer && isDirect(conn))
    if (conn == null) throw new Error(`no direct connection to ${peer}`)
    const ms = await perfClient(conn, upload, download)
    log(`perf with ${peer}: ${upload} bytes up, ${download} down in ${ms.toFixed(0)} ms`)
    return ms
  }
}
