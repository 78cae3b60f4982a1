// A js-libp2p browser peer (libp2p 3.x with @libp2p/webrtc): the other side
// of the interoperability test, and the reference the benchmarks measure
// the Rust page against.
//
// It connects to the relay given as `?relay=<multiaddr>` (over /ws or
// /webrtc-direct), reserves a slot, listens on `/webrtc`, and shows its
// state in the DOM:
//   #status[data-state]   starting | connecting | ready | failed
//   #peer-id              its peer id
//   #webrtc-addr          its `<relay>/p2p-circuit/webrtc/p2p/<id>` address,
//                         through the relay transport it dialed
//   #log                  what happened, one line each
// The test drives it through `window.jsPeer` (see the end of this file).
// Untrusted strings are only ever set as text.

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { peerIdFromString } from '@libp2p/peer-id'
import { ping, PING_PROTOCOL } from '@libp2p/ping'
import { webRTC, webRTCDirect } from '@libp2p/webrtc'
import { webSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const PING_LENGTH = 32

const $ = (id) => document.getElementById(id)

function log (line) {
  const item = document.createElement('li')
  item.textContent = `${new Date().toISOString().slice(11, 23)} ${line}`
  $('log').append(item)
  console.log(line)
}

function setStatus (state, text) {
  $('status').dataset.state = state
  $('status').textContent = text ?? state
}

const params = new URLSearchParams(window.location.search)

async function start () {
  const relay = params.get('relay')
  if (relay == null || relay === '') {
    throw new Error('no ?relay=<multiaddr> in the URL')
  }
  const relayAddr = multiaddr(relay)
  // The circuit address to show goes through the transport we reach the
  // relay by.
  const relayTransport = relay.includes('/webrtc-direct/') ? '/webrtc-direct/' : '/ws/'
  performance.mark('js-peer:start')
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
    // The test runs on loopback over plain ws://, which browsers' default
    // gater refuses.
    connectionGater: { denyDialMultiaddr: () => false },
    services: { identify: identify(), ping: ping() }
  })
  $('peer-id').textContent = node.peerId.toString()
  log(`peer id ${node.peerId}`)

  node.addEventListener('connection:open', ({ detail: conn }) => {
    log(`connection open: ${conn.remotePeer} ${conn.remoteAddr} (${conn.direction}${conn.limits != null ? ', limited' : ''})`)
  })
  node.addEventListener('connection:close', ({ detail: conn }) => {
    log(`connection closed: ${conn.remotePeer} ${conn.remoteAddr}`)
  })
  node.addEventListener('self:peer:update', () => {
    const addrs = node.getMultiaddrs().map((ma) => ma.toString())
    const webrtc = addrs.find((ma) => ma.includes(relayTransport) && ma.includes('/p2p-circuit/webrtc/'))
    if (webrtc != null && $('webrtc-addr').textContent !== webrtc) {
      $('webrtc-addr').textContent = webrtc
      performance.mark('js-peer:reserved')
      log(`listening on ${webrtc}`)
      setStatus('ready')
    }
  })

  setStatus('connecting')
  log(`dialing the relay ${relayAddr}`)
  await node.dial(relayAddr)
  return node
}

// A direct connection is a WebRTC one that is not limited (a relayed
// circuit is).
function describe (conn) {
  return {
    peer: conn.remotePeer.toString(),
    remoteAddr: conn.remoteAddr.toString(),
    direction: conn.direction,
    limited: conn.limits != null,
    direct: conn.limits == null && conn.remoteAddr.toString().includes('/webrtc'),
    status: conn.status
  }
}

// Runs `rounds` pings on a new stream of `conn`: each sends 32 random bytes
// and waits for the same 32 back.
async function pingOn (conn, rounds) {
  const stream = await conn.newStream(PING_PROTOCOL, { signal: AbortSignal.timeout(10000) })
  const rtts = []
  try {
    const incoming = stream[Symbol.asyncIterator]()
    let pending = new Uint8Array(0)
    for (let round = 0; round < rounds; round++) {
      const payload = crypto.getRandomValues(new Uint8Array(PING_LENGTH))
      const started = performance.now()
      stream.send(payload)
      while (pending.length < PING_LENGTH) {
        const { value, done } = await incoming.next()
        if (done) {
          throw new Error(`the stream ended after ${pending.length} of ${PING_LENGTH} bytes`)
        }
        const chunk = value instanceof Uint8Array ? value : value.subarray()
        const joined = new Uint8Array(pending.length + chunk.length)
        joined.set(pending)
        joined.set(chunk, pending.length)
        pending = joined
      }
      const echoed = pending.slice(0, PING_LENGTH)
      pending = pending.slice(PING_LENGTH)
      if (!echoed.every((byte, i) => byte === payload[i])) {
        throw new Error(`round ${round}: the echo differs from what was sent`)
      }
      rtts.push(performance.now() - started)
    }
    await stream.close()
  } catch (err) {
    stream.abort(err)
    throw err
  }
  return rtts
}

const ready = start().catch((err) => {
  setStatus('failed', `failed: ${err.message}`)
  log(`failed: ${err.stack ?? err}`)
  throw err
})

// What the test calls. Each returns plain JSON.
window.jsPeer = {
  // The connections to `peer` (all peers when omitted).
  async connections (peer) {
    const node = await ready
    return node.getConnections()
      .filter((conn) => peer == null || conn.remotePeer.toString() === peer)
      .map(describe)
  },
  // What identify told this node of `peer`: its protocols and agent
  // version (null while it knows nothing of it).
  async identified (peer) {
    const node = await ready
    const known = (await node.peerStore.all()).find((p) => p.id.toString() === peer)
    if (known == null) {
      return null
    }
    const agent = known.metadata.get('AgentVersion')
    return {
      protocols: known.protocols,
      agent: agent == null ? null : new TextDecoder().decode(agent)
    }
  },
  // Dials `addr` (a `/p2p-circuit/webrtc` address) and returns the
  // connection it got.
  async dial (addr) {
    const node = await ready
    const conn = await node.dial(multiaddr(addr), { signal: AbortSignal.timeout(20000) })
    log(`dialed ${addr}: ${conn.remoteAddr}`)
    return describe(conn)
  },
  // Pings `peer` over its direct connection, `rounds` times on one stream.
  async pingDirect (peer, rounds) {
    const node = await ready
    const conn = node.getConnections()
      .find((conn) => conn.remotePeer.toString() === peer && describe(conn).direct)
    if (conn == null) {
      throw new Error(`no direct connection to ${peer}: ${JSON.stringify(node.getConnections().map(describe))}`)
    }
    const rtts = await pingOn(conn, rounds)
    log(`pinged ${peer} ${rounds} times over ${conn.remoteAddr}`)
    return { connection: describe(conn), rtts }
  },
  // Pings `peer` on any connection to it (the relay's, say), `rounds`
  // times on one stream, and times the stream's close, which waits for
  // the peer's FIN_ACK over WebRTC (10 s, then it fails, if none comes).
  async ping (peer, rounds) {
    const node = await ready
    const conn = node.getConnections().find((conn) => conn.remotePeer.toString() === peer)
    if (conn == null) {
      throw new Error(`no connection to ${peer}: ${JSON.stringify(node.getConnections().map(describe))}`)
    }
    const started = performance.now()
    const rtts = await pingOn(conn, rounds)
    log(`pinged ${peer} ${rounds} times over ${conn.remoteAddr}`)
    return { connection: describe(conn), rtts, totalMs: performance.now() - started }
  },
  // Milliseconds from the page's start to its reservation (its
  // `/p2p-circuit/webrtc` address), or null before.
  reservedAfterMs () {
    const [start] = performance.getEntriesByName('js-peer:start')
    const [reserved] = performance.getEntriesByName('js-peer:reserved')
    return start == null || reserved == null ? null : reserved.startTime - start.startTime
  },
  // Closes every connection to `peer`.
  async hangUp (peer) {
    const node = await ready
    await node.hangUp(peerIdFromString(peer))
    log(`hung up on ${peer}`)
  }
}
