//! `ratatosk-bench relay`: the cheapest MQTT relay we can write, as the floor to compare brokers
//! against.
//!
//! One thread, one epoll loop (through mio), nonblocking sockets. Each turn it reads every readable
//! connection once, relays every PUBLISH's bytes unchanged to the connections subscribed to its
//! topic (exact filters and `+`/`#` wildcards), and writes each connection's output once. What a
//! broker spends beyond this — sessions, routing tables, retained messages, QoS state, threads —
//! is what the benchmark table shows as the distance to the floor.
//!
//! It answers CONNECT (CONNACK in the client's version; 5.0 without properties), SUBSCRIBE (granting
//! the QoS asked for; shared subscriptions refused), UNSUBSCRIBE, PINGREQ, and acknowledges QoS 1
//! and 2 publishers itself (PUBACK; PUBREC then PUBCOMP) while ignoring subscribers' PUBACK / PUBCOMP
//! and answering their PUBREC with PUBREL. DISCONNECT, EOF and any malformed or unsupported packet
//! close the connection. It keeps no sessions, retained messages, wills, keep-alive timers or topic
//! aliases, and does not re-encode: a message reaches a subscriber with the publisher's QoS, flags,
//! packet identifier and properties, so publishers and subscribers must speak the same version.

mod conn;
mod frame;
mod hub;
mod routes;

use std::io;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use hub::Hub;

/// The listening socket's token; connections use their slot number, which never gets this high.
const LISTENER: Token = Token(usize::MAX);
/// One read per connection per turn takes at most this much: large enough that a flooding publisher
/// moves many messages per system call, small enough to stay in cache.
const READ_CHUNK: usize = 64 * 1024;
/// Connections accepted per turn, so that a connection storm does not stall relaying.
const ACCEPT_BATCH: usize = 256;
/// Readiness events taken per `epoll_wait`.
const EVENTS: usize = 1024;
/// How often accepting is retried while the process is out of file descriptors.
const STARVED_RETRY: Duration = Duration::from_millis(100);

/// Listens on `addr` and relays until killed. Prints `relay listening on ADDR` (the bound address,
/// so port 0 works) once it accepts connections.
///
/// # Errors
///
/// The address cannot be bound, or the poller fails.
pub fn run(addr: SocketAddr) -> Result<(), String> {
    raise_open_file_limit();
    let mut poll = Poll::new().map_err(|e| format!("cannot create the poller: {e}"))?;
    let mut listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(|e| format!("cannot poll the listener: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    println!("relay listening on {bound}");
    let _ = io::stdout().flush();

    let registry = poll.registry().try_clone().map_err(|e| format!("cannot clone the poller: {e}"))?;
    let mut hub = Hub::new(registry);
    let mut events = Events::with_capacity(EVENTS);
    let mut scratch = vec![0u8; READ_CHUNK];
    let mut accepting = Accept::Idle;
    loop {
        let timeout = if hub.has_input() || accepting == Accept::Ready {
            Some(Duration::ZERO)
        } else if accepting == Accept::Starved {
            // Waiting connections raise no new event; look again when a descriptor may be free.
            Some(STARVED_RETRY)
        } else {
            None
        };
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                if accepting == Accept::Idle {
                    accepting = Accept::Ready;
                }
                continue;
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                hub.on_readable(ev.token());
            }
            if ev.is_writable() {
                hub.on_writable(ev.token());
            }
        }
        if accepting != Accept::Idle {
            accepting = accept(&listener, &mut hub, accepting);
        }
        hub.read_all(&mut scratch);
        hub.flush_all();
    }
}

/// Whether the listener may have connections waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accept {
    /// None until the next readiness event.
    Idle,
    /// Some, or a batch was cut short: accept on this turn.
    Ready,
    /// Out of file descriptors: try again every turn, and at least every `STARVED_RETRY`.
    Starved,
}

/// Accepts up to `ACCEPT_BATCH` connections.
fn accept(listener: &TcpListener, hub: &mut Hub, state: Accept) -> Accept {
    for _ in 0..ACCEPT_BATCH {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = hub.add(stream) {
                    eprintln!("relay: dropping a new connection: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Accept::Idle,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                // The connection waits in the backlog; edge-triggered epoll will not say so again.
                if state != Accept::Starved {
                    eprintln!("relay: out of file descriptors ({e}); raise `ulimit -n`");
                }
                return Accept::Starved;
            }
            // A connection reset before it was accepted; others may still wait.
            Err(_) => {}
        }
    }
    Accept::Ready
}

/// Raises the soft open-file limit to the hard one: every connection is a descriptor, and the
/// default soft limit (often 1024) is far below the 20,000 a benchmark opens.
fn raise_open_file_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            libc::setrlimit(libc::RLIMIT_NOFILE, &raised);
        }
    }
}
