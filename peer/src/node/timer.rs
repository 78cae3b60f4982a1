//! A one-shot timer the node's loop can wait on, re-arm and disarm.

use std::{pin::Pin, time::Duration};

use tokio::time::Sleep;

/// A one-shot timer that can be disarmed.
#[derive(Debug)]
pub(super) struct Timer {
    pub(super) sleep: Pin<Box<Sleep>>,
    pub(super) armed: bool,
}

impl Default for Timer {
    fn default() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: false,
        }
    }
}

impl Timer {
    pub(super) fn arm(&mut self, after: Duration) {
        self.sleep
            .as_mut()
            .reset(tokio::time::Instant::now() + after);
        self.armed = true;
    }
}
