//! Two headless Chromium pages connect, reserve and chat through the relay
//! (its defaults) while one host keeps twice the relay's handshake budget
//! of idle sockets open on each of its TCP listeners (TCP and WebSocket),
//! reopening each as the relay closes it. The attacker is 127.0.0.2; the
//! pages are 127.0.0.1. The attack is bounded in count and time and stops
//! by itself. How long the pages took is printed, not asserted.
//!
//! Needs the built page (`scripts/build-page`), chromedriver and Chromium.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use e2e::{Browser, Check, ChromeDriver, PageRelay, TIMEOUT, wait_page, wait_pages, wait_until};
use tokio::{io::AsyncReadExt as _, net::TcpSocket, sync::watch, task::JoinSet};

const PREFIX: &str = "abuse";
const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// 2 x the relay's default --max-pending-connections (128).
const IDLE_SOCKETS: usize = 256;
/// The attack never outlasts this, whatever happens to the test.
const ATTACK_LIMIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_connect_reserve_and_chat_while_one_host_holds_idle_sockets() {
    let PageRelay {
        process: relay,
        ports,
        state_dir: _state_dir,
        ..
    } = PageRelay::start(PREFIX, &[])
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));

    let (stop_tx, stop) = watch::channel(false);
    let opened = Arc::new(AtomicUsize::new(0));
    let mut attack = JoinSet::new();
    for port in [ports.tcp, ports.websocket] {
        hold_idle_sockets(
            (Ipv4Addr::LOCALHOST, port).into(),
            &stop,
            &opened,
            &mut attack,
        );
    }
    // Let the attack fill what it can before the pages try.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let driver = ChromeDriver::start(PREFIX)
        .await
        .expect("chromedriver starts");
    let a = Browser::open(&driver, "A").await.expect("browser A opens");
    let b = Browser::open(&driver, "B").await.expect("browser B opens");
    let result = scenario(&a, &b, &ports.page_url()).await;
    let _ = stop_tx.send(true);
    while attack.join_next().await.is_some() {}
    if let Err(error) = result {
        let a_report = a.save_failure_report(PREFIX).await;
        let b_report = b.save_failure_report(PREFIX).await;
        panic!(
            "{error:#}\n\nartifacts:\n{a_report}\n{b_report}\nchromedriver log: {}\nrelay log: {}",
            driver.log_path().display(),
            relay.log_path.display()
        );
    }
    let opened = opened.load(Ordering::Relaxed);
    println!("the attacker opened {opened} sockets in all");
    assert!(
        opened >= 2 * 2 * IDLE_SOCKETS,
        "the attack did not run: {opened} sockets"
    );
    relay.kill().await.expect("kill the relay");
    a.close().await.expect("close browser A");
    b.close().await.expect("close browser B");
}

async fn scenario(a: &Browser, b: &Browser, url: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    a.goto(url).await?;
    b.goto(url).await?;
    wait_pages(a, b, "#relay-addr is prefilled", TIMEOUT, |page| {
        page.relay_addr
            .trim()
            .is_empty()
            .then(|| "#relay-addr is empty".to_owned())
    })
    .await?;
    a.click("#connect").await?;
    b.click("#connect").await?;
    let (page_a, page_b) = wait_pages(
        a,
        b,
        "#status is connected with a circuit address (a reservation)",
        TIMEOUT,
        |page| {
            if !page.is_connected() {
                Some(format!("#status is {:?}", page.status))
            } else if !page.self_addr.contains("/p2p-circuit") {
                Some(format!("#self-addr is {:?}", page.self_addr))
            } else {
                None
            }
        },
    )
    .await?;
    println!(
        "both pages loaded, connected and reserved in {:?} during the attack",
        started.elapsed()
    );
    let (id_a, id_b) = (page_a.self_peer_id, page_b.self_peer_id);
    wait_page(a, &format!("#peers lists B ({id_b})"), TIMEOUT, |page| {
        (!page.lists_peer(&id_b)).then(|| format!("#peers does not list {id_b}"))
    })
    .await?;
    chat(a, b, &id_a).await?;
    chat(b, a, &id_b).await?;
    println!("the pages chatted {:?} after loading", started.elapsed());
    Ok(())
}

/// `from` sends a unique message; it shows up in `to`'s chat log.
async fn chat(from: &Browser, to: &Browser, from_id: &str) -> anyhow::Result<()> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    let text = format!("hello from {} under attack #{nanos:09}", from.name);
    from.fill("#chat-input", &text).await?;
    from.press_enter("#chat-input").await?;
    let what = format!("page {}'s #chat-log shows {text:?}", to.name);
    let text = &text;
    wait_until(&what, TIMEOUT, || async move {
        let receiver = to.snapshot().await?;
        if receiver.has_message(from_id, text) {
            return Ok(Check::Done(()));
        }
        Ok(Check::NotYet(format!(
            "not on page {}\n{receiver}",
            to.name
        )))
    })
    .await
}

/// Keeps [`IDLE_SOCKETS`] idle sockets from [`ATTACKER`] open to `target`,
/// reopening each as the relay closes it, until `stop` turns true or
/// [`ATTACK_LIMIT`] has passed.
fn hold_idle_sockets(
    target: SocketAddr,
    stop: &watch::Receiver<bool>,
    opened: &Arc<AtomicUsize>,
    tasks: &mut JoinSet<()>,
) {
    let started = Instant::now();
    for _ in 0..IDLE_SOCKETS {
        let mut stop = stop.clone();
        let opened = opened.clone();
        tasks.spawn(async move {
            while !*stop.borrow() && started.elapsed() < ATTACK_LIMIT {
                let open = async {
                    let socket = TcpSocket::new_v4()?;
                    socket.bind((ATTACKER, 0).into())?;
                    socket.connect(target).await
                };
                if let Ok(mut stream) = open.await {
                    opened.fetch_add(1, Ordering::Relaxed);
                    let mut buf = [0u8; 256];
                    let closed = async {
                        while let Ok(n) = stream.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                    };
                    tokio::select! {
                        _ = closed => {}
                        _ = stop.changed() => break,
                        _ = tokio::time::sleep(ATTACK_LIMIT) => break,
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = stop.changed() => break,
                }
            }
        });
    }
}
