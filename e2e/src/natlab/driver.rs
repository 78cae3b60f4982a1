//! chromedriver or geckodriver (and so Chromium or Firefox) inside a
//! laptop's namespace, driven from this process, which stays in the
//! machine's own namespace.
//!
//! The laptop has no link to this namespace, on purpose. To reach the
//! driver, a bridge listens on 127.0.0.1:<port> here and, for each
//! connection, opens one to 127.0.0.1:<port> inside the laptop's namespace
//! (from a thread that entered it with setns) and copies bytes both ways:
//! a pipe between two sockets, not a route, so no packet of the lab ever
//! leaves it.

use std::{
    io,
    net::{Ipv4Addr, Shutdown, TcpListener, TcpStream},
    ops::Deref,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
};

use anyhow::Context as _;

use super::{Netns, netns::enter};
use crate::{BrowserKind, Driver};

/// A WebDriver server running inside a namespace, reachable here through a
/// bridge at [`Driver::url`]; use it as a [`Driver`].
#[derive(Debug)]
pub struct DriverInNamespace {
    /// Declared first: shut down (through the bridge) before the bridges go.
    driver: Driver,
    _bridge: Bridge,
    /// Firefox's WebDriver BiDi port, which the session's `webSocketUrl`
    /// names (the console recorder is installed through it).
    _bidi_bridge: Option<Bridge>,
}

impl DriverInNamespace {
    /// Starts chromedriver in `netns`, logging to
    /// `<repo>/artifacts/<log_name>-chromedriver.log`.
    pub async fn start(netns: &Netns, log_name: &str) -> anyhow::Result<Self> {
        Self::start_for(BrowserKind::Chromium, netns, log_name).await
    }

    /// Starts the driver of a `kind` browser in `netns`, logging to
    /// `<repo>/artifacts/<log_name>-<driver>.log`.
    pub async fn start_for(
        kind: BrowserKind,
        netns: &Netns,
        log_name: &str,
    ) -> anyhow::Result<Self> {
        let bridge = Bridge::start(netns)?;
        let bidi_bridge = match kind {
            BrowserKind::Chromium => None,
            BrowserKind::Firefox => Some(Bridge::start(netns)?),
        };
        // The namespace is fresh, so the bridges' port numbers are free there.
        let driver = Driver::start_wrapped_for(
            kind,
            log_name,
            &netns.wrapper(),
            bridge.port,
            bidi_bridge.as_ref().map_or(0, |bridge| bridge.port),
        )
        .await?;
        Ok(Self {
            driver,
            _bridge: bridge,
            _bidi_bridge: bidi_bridge,
        })
    }
}

impl Deref for DriverInNamespace {
    type Target = Driver;

    fn deref(&self) -> &Driver {
        &self.driver
    }
}

/// Forwards connections to 127.0.0.1:`port` here to 127.0.0.1:`port`
/// inside a namespace.
#[derive(Debug)]
struct Bridge {
    port: u16,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Bridge {
    fn start(netns: &Netns) -> anyhow::Result<Self> {
        // Bound before the thread enters the namespace: the listener stays
        // here, every socket the thread opens afterwards is there.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind the bridge")?;
        let port = listener.local_addr()?.port();
        let namespace = netns.open()?;
        let name = netns.name().to_owned();
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stopping);
        let acceptor = std::thread::Builder::new()
            .name(format!("bridge-{name}"))
            .spawn(move || {
                if let Err(error) = enter(&namespace) {
                    eprintln!("bridge to {name}: {error:#}");
                    return;
                }
                for outside in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(outside) = outside else { continue };
                    // Refused while chromedriver is still starting: dropping
                    // the outside end makes the caller's poll try again.
                    if let Ok(inside) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
                        splice(outside, inside);
                    }
                }
            })
            .context("start the bridge thread")?;
        Ok(Self {
            port,
            stopping,
            acceptor: Some(acceptor),
        })
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which then sees it is stopping.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Copies bytes both ways between two sockets until each side is done.
fn splice(a: TcpStream, b: TcpStream) {
    let (Ok(a_reader), Ok(b_reader)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        }
    };
    std::thread::spawn(copy(a_reader, b));
    std::thread::spawn(copy(b_reader, a));
}
