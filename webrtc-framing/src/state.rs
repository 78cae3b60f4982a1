//! The state of one stream's two halves, driven by frames from the peer and
//! by the local side's calls; pure, so that every close and reset sequence
//! of the spec (`webrtc/README.md`, "Closing an RTCDataChannel") is tested
//! without a channel.
//!
//! - A FIN from the peer ends our read half and is answered with FIN_ACK.
//! - Our close sends FIN; the write half is closed once FIN_ACK comes back
//!   (or STOP_SENDING, or a timeout the caller runs: an older peer never
//!   acknowledges).
//! - STOP_SENDING ends our write half without a reply (the spec says not
//!   to answer it with RESET_STREAM); flags keep being handled after our
//!   own STOP_SENDING, so a FIN_ACK still closes the write half.
//! - RESET_STREAM ends both halves; what was received before it stays
//!   readable.
//! - A FIN_ACK nobody waits for, and a flag this version does not know,
//!   are ignored: never an error.

use std::io;

use crate::codec::{Flag, Frame};

/// Our read half: what the peer sends us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadHalf {
    Open,
    /// The peer sent FIN (or its channel closed): the data has ended.
    Finished,
    /// We sent STOP_SENDING: data that still arrives is dropped.
    Stopped,
    /// The stream was reset, by the peer or by us.
    Reset,
}

/// Our write half: what we send the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteHalf {
    Open,
    /// We sent (or are about to send) FIN and wait for FIN_ACK.
    Closing,
    /// FIN_ACK arrived, or we stopped waiting for it.
    Closed,
    /// The peer sent STOP_SENDING: it reads nothing more.
    Stopped,
    /// The stream was reset, by the peer or by us.
    Reset,
}

/// How far a close of the write half has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseProgress {
    /// FIN is out; FIN_ACK has not come.
    WaitingForFinAck,
    /// The write half is closed: the peer acknowledged our FIN, stopped
    /// reading, or the wait ended.
    Done,
    /// The stream was reset before the peer acknowledged our FIN.
    Reset,
}

/// Both halves, and the flags we owe the peer.
#[derive(Debug, Clone)]
pub struct StreamState {
    read: ReadHalf,
    write: WriteHalf,
    owe_fin: bool,
    owe_fin_ack: bool,
    owe_stop_sending: bool,
    owe_reset: bool,
}

impl Default for StreamState {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamState {
    pub fn new() -> Self {
        Self {
            read: ReadHalf::Open,
            write: WriteHalf::Open,
            owe_fin: false,
            owe_fin_ack: false,
            owe_stop_sending: false,
            owe_reset: false,
        }
    }

    pub fn read_half(&self) -> ReadHalf {
        self.read
    }

    pub fn write_half(&self) -> WriteHalf {
        self.write
    }

    /// Applies a frame from the peer; returns the payload to deliver to
    /// the reader, if the read half still takes data.
    pub fn on_frame(&mut self, frame: Frame) -> Option<Vec<u8>> {
        // A frame's payload comes before its flag.
        let payload =
            (self.read == ReadHalf::Open && !frame.payload.is_empty()).then_some(frame.payload);
        match frame.flag {
            None => {}
            Some(Flag::Fin) if self.read != ReadHalf::Reset => {
                if self.read == ReadHalf::Open {
                    self.read = ReadHalf::Finished;
                }
                self.owe_fin_ack = true;
            }
            // No acknowledgement on a reset stream.
            Some(Flag::Fin) => {}
            Some(Flag::StopSending) => {
                if matches!(self.write, WriteHalf::Open | WriteHalf::Closing) {
                    self.write = WriteHalf::Stopped;
                    // Nothing we still owe for writing matters to a peer that
                    // stopped reading.
                    self.owe_fin = false;
                }
            }
            Some(Flag::ResetStream) => {
                self.read = ReadHalf::Reset;
                self.write = WriteHalf::Reset;
                self.owe_fin = false;
                self.owe_fin_ack = false;
                self.owe_stop_sending = false;
            }
            Some(Flag::FinAck) => {
                if self.write == WriteHalf::Closing {
                    self.write = WriteHalf::Closed;
                } else {
                    tracing::trace!(write = ?self.write, "ignoring a FIN_ACK nobody waits for");
                }
            }
            Some(Flag::Other(value)) => {
                tracing::debug!(value, "ignoring a frame flag this version does not know");
            }
        }
        payload
    }

    /// The channel under the stream closed (or failed): nothing more will
    /// arrive, and nothing more can be sent.
    pub fn on_channel_closed(&mut self) {
        if self.read == ReadHalf::Open {
            self.read = ReadHalf::Finished;
        }
        if self.write == WriteHalf::Closing {
            // js-libp2p, too, takes a closed channel as the end of the wait.
            self.write = WriteHalf::Closed;
        }
        self.owe_fin = false;
        self.owe_fin_ack = false;
        self.owe_stop_sending = false;
        self.owe_reset = false;
    }

    /// Whether we may send data now; the error says why not.
    pub fn check_write(&self) -> io::Result<()> {
        match self.write {
            WriteHalf::Open => Ok(()),
            WriteHalf::Closing | WriteHalf::Closed => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the stream is closed for writing",
            )),
            WriteHalf::Stopped => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the peer stopped reading the stream (STOP_SENDING)",
            )),
            WriteHalf::Reset => Err(reset_error()),
        }
    }

    /// Starts closing the write half: FIN is owed. Does nothing if the
    /// half is already closing or over.
    pub fn close_write(&mut self) {
        if self.write == WriteHalf::Open {
            self.write = WriteHalf::Closing;
            self.owe_fin = true;
        }
    }

    pub fn close_progress(&self) -> CloseProgress {
        match self.write {
            WriteHalf::Open | WriteHalf::Closing => CloseProgress::WaitingForFinAck,
            WriteHalf::Closed | WriteHalf::Stopped => CloseProgress::Done,
            WriteHalf::Reset => CloseProgress::Reset,
        }
    }

    /// Gives up waiting for FIN_ACK (the spec allows it, without the
    /// guarantee that the peer received everything).
    pub fn stop_waiting_for_fin_ack(&mut self) {
        if self.write == WriteHalf::Closing {
            self.write = WriteHalf::Closed;
        }
    }

    /// Closes the read half: STOP_SENDING is owed if the peer may still
    /// send.
    pub fn close_read(&mut self) {
        if self.read == ReadHalf::Open {
            self.read = ReadHalf::Stopped;
            self.owe_stop_sending = true;
        }
    }

    /// Abandons the stream: RESET_STREAM is owed unless the peer reset it.
    pub fn reset(&mut self) {
        if self.write != WriteHalf::Reset || self.read != ReadHalf::Reset {
            self.owe_reset = true;
        }
        self.read = ReadHalf::Reset;
        self.write = WriteHalf::Reset;
        self.owe_fin = false;
        self.owe_fin_ack = false;
        self.owe_stop_sending = false;
    }

    /// Whether closing the stream's handle without a reset is graceful: our
    /// write half is closing or over.
    pub fn write_finished(&self) -> bool {
        self.write != WriteHalf::Open
    }

    /// Whether a FIN from the peer may still come, which we would owe a
    /// FIN_ACK.
    pub fn may_receive_fin(&self) -> bool {
        matches!(self.read, ReadHalf::Open | ReadHalf::Stopped)
    }

    /// The next flag to send, most urgent first; call
    /// [`StreamState::flag_sent`] once it is on its way.
    pub fn next_flag(&self) -> Option<Flag> {
        if self.owe_reset {
            Some(Flag::ResetStream)
        } else if self.owe_fin_ack {
            Some(Flag::FinAck)
        } else if self.owe_stop_sending {
            Some(Flag::StopSending)
        } else if self.owe_fin {
            Some(Flag::Fin)
        } else {
            None
        }
    }

    pub fn flag_sent(&mut self, flag: Flag) {
        match flag {
            Flag::ResetStream => self.owe_reset = false,
            Flag::FinAck => self.owe_fin_ack = false,
            Flag::StopSending => self.owe_stop_sending = false,
            Flag::Fin => self.owe_fin = false,
            Flag::Other(_) => {}
        }
    }

    /// The error of a read or write on a reset stream.
    pub fn read_error(&self) -> Option<io::Error> {
        (self.read == ReadHalf::Reset).then(reset_error)
    }
}

fn reset_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "the stream was reset")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(flag: Flag) -> Frame {
        Frame {
            flag: Some(flag),
            payload: vec![],
        }
    }

    fn data(bytes: &[u8]) -> Frame {
        Frame {
            flag: None,
            payload: bytes.to_vec(),
        }
    }

    /// Sends every owed flag, in order.
    fn drain_flags(state: &mut StreamState) -> Vec<Flag> {
        let mut sent = Vec::new();
        while let Some(flag) = state.next_flag() {
            state.flag_sent(flag);
            sent.push(flag);
        }
        sent
    }

    #[test]
    fn sequential_close_as_in_the_spec_example() {
        // A: DATA, FIN; B: FIN_ACK, DATA, FIN; A: FIN_ACK.
        let (mut a, mut b) = (StreamState::new(), StreamState::new());
        assert_eq!(b.on_frame(data(b"request")), Some(b"request".to_vec()));
        a.close_write();
        assert_eq!(drain_flags(&mut a), [Flag::Fin]);
        assert_eq!(a.close_progress(), CloseProgress::WaitingForFinAck);
        assert_eq!(b.on_frame(flag(Flag::Fin)), None);
        assert_eq!(b.read_half(), ReadHalf::Finished);
        assert_eq!(drain_flags(&mut b), [Flag::FinAck]);
        a.on_frame(flag(Flag::FinAck));
        assert_eq!(a.close_progress(), CloseProgress::Done);

        // B's half still works after A's FIN.
        b.check_write().expect("B's write half is open");
        assert_eq!(a.on_frame(data(b"response")), Some(b"response".to_vec()));
        b.close_write();
        assert_eq!(drain_flags(&mut b), [Flag::Fin]);
        a.on_frame(flag(Flag::Fin));
        assert_eq!(drain_flags(&mut a), [Flag::FinAck]);
        b.on_frame(flag(Flag::FinAck));
        assert_eq!(b.close_progress(), CloseProgress::Done);
        assert_eq!(
            (a.read_half(), a.write_half()),
            (ReadHalf::Finished, WriteHalf::Closed)
        );
        assert_eq!(
            (b.read_half(), b.write_half()),
            (ReadHalf::Finished, WriteHalf::Closed)
        );
    }

    #[test]
    fn simultaneous_close_acknowledges_both_fins() {
        let (mut a, mut b) = (StreamState::new(), StreamState::new());
        a.close_write();
        b.close_write();
        let from_a = drain_flags(&mut a);
        let from_b = drain_flags(&mut b);
        assert_eq!(
            (from_a.as_slice(), from_b.as_slice()),
            (&[Flag::Fin][..], &[Flag::Fin][..])
        );
        a.on_frame(flag(Flag::Fin));
        b.on_frame(flag(Flag::Fin));
        assert_eq!(drain_flags(&mut a), [Flag::FinAck]);
        assert_eq!(drain_flags(&mut b), [Flag::FinAck]);
        a.on_frame(flag(Flag::FinAck));
        b.on_frame(flag(Flag::FinAck));
        assert_eq!(a.close_progress(), CloseProgress::Done);
        assert_eq!(b.close_progress(), CloseProgress::Done);
    }

    #[test]
    fn writing_after_close_fails_and_data_after_fin_is_dropped() {
        let mut state = StreamState::new();
        state.close_write();
        assert_eq!(
            state.check_write().expect_err("closed").kind(),
            io::ErrorKind::BrokenPipe
        );
        state.on_frame(flag(Flag::Fin));
        assert_eq!(state.on_frame(data(b"late")), None, "data after FIN");
    }

    #[test]
    fn an_old_peer_that_never_acknowledges_costs_only_the_wait() {
        let mut state = StreamState::new();
        state.close_write();
        drain_flags(&mut state);
        assert_eq!(state.close_progress(), CloseProgress::WaitingForFinAck);
        state.stop_waiting_for_fin_ack();
        assert_eq!(state.close_progress(), CloseProgress::Done);
        // The FIN_ACK that comes after all is ignored.
        state.on_frame(flag(Flag::FinAck));
        assert_eq!(state.close_progress(), CloseProgress::Done);
    }

    #[test]
    fn an_unexpected_fin_ack_or_unknown_flag_is_ignored() {
        let mut state = StreamState::new();
        state.on_frame(flag(Flag::FinAck));
        state.on_frame(flag(Flag::Other(42)));
        assert_eq!(
            (state.read_half(), state.write_half()),
            (ReadHalf::Open, WriteHalf::Open)
        );
        assert_eq!(state.on_frame(data(b"still")), Some(b"still".to_vec()));
        assert_eq!(state.next_flag(), None);
    }

    #[test]
    fn a_frame_with_data_and_fin_delivers_the_data_then_ends() {
        let mut state = StreamState::new();
        let frame = Frame {
            flag: Some(Flag::Fin),
            payload: b"last".to_vec(),
        };
        assert_eq!(state.on_frame(frame), Some(b"last".to_vec()));
        assert_eq!(state.read_half(), ReadHalf::Finished);
        assert_eq!(drain_flags(&mut state), [Flag::FinAck]);
    }

    #[test]
    fn stop_sending_ends_the_peers_writes_without_a_reset_in_reply() {
        let (mut a, mut b) = (StreamState::new(), StreamState::new());
        b.close_read();
        assert_eq!(drain_flags(&mut b), [Flag::StopSending]);
        a.on_frame(flag(Flag::StopSending));
        assert_eq!(drain_flags(&mut a), [], "no RESET_STREAM in reply");
        let error = a.check_write().expect_err("the peer stopped reading");
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
        // B drops data that still arrives.
        assert_eq!(b.on_frame(data(b"in flight")), None);
    }

    #[test]
    fn stop_sending_ends_a_wait_for_fin_ack() {
        let mut state = StreamState::new();
        state.close_write();
        drain_flags(&mut state);
        state.on_frame(flag(Flag::StopSending));
        assert_eq!(state.close_progress(), CloseProgress::Done);
    }

    #[test]
    fn after_our_stop_sending_flags_still_count_so_fin_ack_closes() {
        let mut state = StreamState::new();
        state.close_read();
        state.close_write();
        assert_eq!(drain_flags(&mut state), [Flag::StopSending, Flag::Fin]);
        state.on_frame(flag(Flag::FinAck));
        assert_eq!(state.close_progress(), CloseProgress::Done);
        // The peer's own FIN is still acknowledged.
        state.on_frame(flag(Flag::Fin));
        assert_eq!(drain_flags(&mut state), [Flag::FinAck]);
    }

    #[test]
    fn reset_from_the_peer_ends_both_halves_and_fails_a_pending_close() {
        let mut state = StreamState::new();
        state.close_write();
        drain_flags(&mut state);
        state.on_frame(flag(Flag::ResetStream));
        assert_eq!(state.close_progress(), CloseProgress::Reset);
        assert_eq!(
            state.read_error().expect("reset").kind(),
            io::ErrorKind::ConnectionReset
        );
        assert_eq!(
            state.check_write().expect_err("reset").kind(),
            io::ErrorKind::ConnectionReset
        );
        assert_eq!(state.on_frame(data(b"after")), None);
        // No reply to a reset, not even when we drop the stream.
        state.reset();
        assert_eq!(drain_flags(&mut state), []);
    }

    #[test]
    fn local_reset_supersedes_every_other_owed_flag() {
        let mut state = StreamState::new();
        state.on_frame(flag(Flag::Fin));
        state.close_write();
        state.reset();
        assert_eq!(drain_flags(&mut state), [Flag::ResetStream]);
    }

    #[test]
    fn a_closed_channel_ends_reads_and_a_wait_for_fin_ack() {
        let mut state = StreamState::new();
        state.close_write();
        state.on_channel_closed();
        assert_eq!(state.read_half(), ReadHalf::Finished);
        assert_eq!(state.close_progress(), CloseProgress::Done);
        assert_eq!(state.next_flag(), None, "nothing can be sent any more");
    }
}
