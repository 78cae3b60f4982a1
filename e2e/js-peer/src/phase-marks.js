// User Timing marks at the WebRTC phases our page marks (webrtc-p2p's
// `timing` module), for the benchmarks' side-by-side breakdown
// (bench/browser-pair.mjs). js-libp2p has no hooks at these moments, so
// the browser's RTCPeerConnection is wrapped: imported before
// @libp2p/webrtc, which takes `globalThis.RTCPeerConnection` when its
// module is evaluated. The marks carry no peer id (a peer connection does
// not know it); the benchmark's pages each make one browser-to-browser
// connection.
//
//   libp2p-webrtc:signaling   dialer: the offer is being made (the
//                             signaling stream is open); listener: the
//                             offer arrived
//   libp2p-webrtc:offer       dialer: the offer was sent and set;
//                             listener: it was applied
//   libp2p-webrtc:answer      dialer: the answer was applied; listener:
//                             it was set (and sent)
//   libp2p-webrtc:connected   the peer connection is `connected`
//   libp2p-webrtc-direct:dial, :described   a WebRTC-direct dial to a
//                             server (an ICE-lite answer) began, and its
//                             descriptions are set

function mark (name, startTime) {
  performance.clearMarks(name)
  performance.mark(name, startTime == null ? undefined : { startTime })
}

const Native = globalThis.RTCPeerConnection
if (Native != null) {
  globalThis.RTCPeerConnection = class TimedPeerConnection extends Native {
    constructor (...args) {
      super(...args)
      this.timing = { created: performance.now(), server: false }
      this.addEventListener('connectionstatechange', () => {
        if (this.connectionState === 'connected' && !this.timing.server) mark('libp2p-webrtc:connected')
      })
    }

    createOffer (...args) {
      this.timing.offering = performance.now()
      return super.createOffer(...args)
    }

    async setLocalDescription (...args) {
      await super.setLocalDescription(...args)
      if (this.localDescription?.type === 'offer') this.timing.offered = performance.now()
      else if (this.localDescription?.type === 'answer') mark('libp2p-webrtc:answer')
    }

    async setRemoteDescription (description, ...rest) {
      const started = performance.now()
      await super.setRemoteDescription(description, ...rest)
      if (description?.type === 'offer') {
        mark('libp2p-webrtc:signaling', started)
        mark('libp2p-webrtc:offer')
      } else if (/^a=ice-lite/m.test(description?.sdp ?? '')) {
        // A WebRTC-direct server's answer.
        this.timing.server = true
        mark('libp2p-webrtc-direct:dial', this.timing.created)
        mark('libp2p-webrtc-direct:described')
      } else if (description?.type === 'answer') {
        if (this.timing.offering != null) mark('libp2p-webrtc:signaling', this.timing.offering)
        if (this.timing.offered != null) mark('libp2p-webrtc:offer', this.timing.offered)
        mark('libp2p-webrtc:answer')
      }
    }
  }
}
