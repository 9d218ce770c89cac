//! The HTTP/1.1 accept loop: a client that sends nothing, or sends its request line and
//! headers too slowly, or leaves a kept-alive connection unused, is disconnected, and the
//! process holds a bounded number of client connections at once.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::extract::ConnectInfo;
use hyper::rt::{Sleep, Timer};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, TryAcquireError, watch};

/// How long a client may take to send a request line and headers: from the opening of
/// the connection for its first request (so a client that sends nothing is let go as
/// well), and from the first byte of each later request.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a kept-alive connection may wait for its next request. Longer than the 60 s
/// after which nginx drops an idle upstream connection by default, so that a proxy
/// normally closes first: a request the proxy sends just as the service closes the
/// connection fails.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// The most client connections a process holds at once, whatever its descriptor limit.
pub(crate) const MAX_CONNECTIONS: usize = 4096;

/// Descriptors kept for everything but client connections and the database: standard
/// streams, the runtime, listeners, calls to the homeserver and to clients' key sets.
const RESERVED_DESCRIPTORS: u64 = 128;

/// Descriptors one pooled database connection may hold (SQLite opens the database, its
/// write-ahead log and its shared-memory file; PostgreSQL needs one socket).
const DESCRIPTORS_PER_DATABASE_CONNECTION: u64 = 3;

/// Database connections held outside the pool (PostgreSQL's revocation feed and job
/// waker).
const UNPOOLED_DATABASE_CONNECTIONS: u64 = 2;

/// The cap never goes below this, however low the descriptor limit.
const MIN_CONNECTIONS: usize = 16;

/// The pause after an accept error that is not about one connection (out of
/// descriptors or memory): retrying at once would spin while nothing has changed.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(500);

/// How often a full connection table is logged while it stays full.
const FULL_WARNING_INTERVAL: Duration = Duration::from_mins(1);

/// The environment variable the integration tests shorten these figures with (not a
/// configuration key: `key=value` pairs `header_read_ms`, `idle_ms`, `max_connections`).
pub(crate) const TEST_OVERRIDE_VAR: &str = "MAS_TEST_CONNECTION_LIMITS";

/// The figures the accept loop enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionLimits {
    /// See [`HEADER_READ_TIMEOUT`].
    pub(crate) header_read_timeout: Duration,
    /// See [`IDLE_TIMEOUT`].
    pub(crate) idle_timeout: Duration,
    /// Client connections open at once, over every listener of the process.
    pub(crate) max_connections: usize,
}

impl ConnectionLimits {
    /// The shipped figures, with the connection cap fitted under this process's
    /// descriptor limit next to a pool of `database_connections`.
    pub(crate) fn for_process(database_connections: u32) -> Self {
        let limit = descriptor_limit();
        let max_connections = connection_cap(limit, database_connections);
        if max_connections < MAX_CONNECTIONS {
            tracing::warn!(
                "the open-files limit ({}) leaves room for {max_connections} client \
                 connections; raise it (ulimit -n, LimitNOFILE=) for up to {MAX_CONNECTIONS}",
                limit.unwrap_or_default(),
            );
        }
        Self {
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_connections,
        }
    }

    /// `self` with the figures a [`TEST_OVERRIDE_VAR`] value names.
    pub(crate) fn with_overrides(mut self, spec: &str) -> anyhow::Result<Self> {
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("{TEST_OVERRIDE_VAR}: `{pair}` is not key=value"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .with_context(|| format!("{TEST_OVERRIDE_VAR}: `{value}` is not a number"))
            };
            match key {
                "header_read_ms" => self.header_read_timeout = Duration::from_millis(number()?),
                "idle_ms" => self.idle_timeout = Duration::from_millis(number()?),
                "max_connections" => {
                    self.max_connections = usize::try_from(number()?)?.max(1);
                }
                other => bail!("{TEST_OVERRIDE_VAR}: unknown key `{other}`"),
            }
        }
        Ok(self)
    }
}

/// The soft limit on open files, if there is one.
#[cfg(unix)]
fn descriptor_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// The soft limit on open files, if there is one.
#[cfg(not(unix))]
fn descriptor_limit() -> Option<u64> {
    None
}

/// The connection cap under `descriptor_limit`: what is left once the database pool and
/// the rest are counted, so the process runs out of connection slots (and new clients
/// wait in the kernel's backlog) before it runs out of descriptors (and the database
/// pool, hence `/health` and every login, fails).
fn connection_cap(descriptor_limit: Option<u64>, database_connections: u32) -> usize {
    let Some(limit) = descriptor_limit else {
        return MAX_CONNECTIONS;
    };
    let database = DESCRIPTORS_PER_DATABASE_CONNECTION
        * (u64::from(database_connections) + UNPOOLED_DATABASE_CONNECTIONS);
    let room = limit.saturating_sub(RESERVED_DESCRIPTORS + database);
    usize::try_from(room)
        .unwrap_or(usize::MAX)
        .clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
}

/// Serves `router` on `listener` until `stop` turns true, then stops accepting and
/// returns once the open requests are answered. `slots` is shared by every listener
/// of the process and holds [`ConnectionLimits::max_connections`] permits.
pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut warned_full: Option<Instant> = None;
    loop {
        // A slot is taken before accepting, so that at the cap new clients wait in the
        // kernel's backlog instead of being accepted and dropped.
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(TryAcquireError::Closed) => break,
            Err(TryAcquireError::NoPermits) => {
                if warned_full.is_none_or(|at| at.elapsed() >= FULL_WARNING_INTERVAL) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "every connection slot is in use; new clients wait until one is free"
                    );
                    warned_full = Some(Instant::now());
                }
                tokio::select! {
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    _ = stop.wait_for(|stop| *stop) => break,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                tracing::error!(%error, "cannot accept a connection; retrying in {ACCEPT_BACKOFF:?}");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    _ = stop.wait_for(|stop| *stop) => break,
                }
            }
        };

        let stream = CountingStream::new(stream);
        let timer = HeadTimer::new(
            limits.header_read_timeout,
            limits.idle_timeout,
            Arc::clone(&stream.read),
        );
        // What `into_make_service_with_connect_info` would hand each connection: the
        // rate limiter reads the peer address from this extension.
        let service = tower::Layer::layer(&axum::Extension(ConnectInfo(remote)), router.clone());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(timer)
            .header_read_timeout(limits.header_read_timeout);
        let connection = graceful
            .watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%remote, %error, "connection closed");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors that concern one incoming connection only, after which accepting the next
/// can go on at once.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A client's TCP stream that counts the bytes read from it, so that [`HeadTimer`] can
/// tell an idle connection from one whose next request has begun.
struct CountingStream {
    inner: TcpStream,
    read: Arc<AtomicU64>,
}

impl CountingStream {
    fn new(inner: TcpStream) -> Self {
        Self {
            inner,
            read: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl AsyncRead for CountingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        if read > 0 {
            // Only this connection's task touches the counter; no ordering is needed.
            self.read
                .fetch_add(u64::try_from(read).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// hyper's header-read timer for one connection, which also makes its idle timeout.
///
/// hyper (1.x) starts this timer whenever it waits for a request head: when the
/// connection opens, and again as soon as a response is sent. Alone, it would close
/// every kept-alive connection after [`HEADER_READ_TIMEOUT`]; so between requests the
/// deadline is the idle timeout, until the first byte of the next request moves it to
/// the header timeout from that byte on. (A request head already in hyper's buffer when
/// the wait starts, pipelined behind the last one, is not seen arriving and gets the idle
/// timeout.)
#[derive(Debug, Clone)]
struct HeadTimer {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    /// The connection's [`CountingStream`] counter.
    read: Arc<AtomicU64>,
    /// The connection's one runtime timer, which each wait moves. A new timer for every
    /// wait went into the runtime's timer wheel and out again on every request; moving
    /// a registered timer later (the next idle deadline) is one atomic exchange.
    deadline: SharedDeadline,
}

/// A runtime timer the waits of one connection share; only one of them is ever polled
/// at a time, by the connection's task, so the lock is never contended.
type SharedDeadline = Arc<std::sync::Mutex<Pin<Box<tokio::time::Sleep>>>>;

impl Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(HeadSleep {
            deadline: Arc::new(std::sync::Mutex::new(Box::pin(tokio::time::sleep(
                duration,
            )))),
            idle_since: None,
            read: Arc::clone(&self.read),
            header_read_timeout: self.header_read_timeout,
        })
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(self.wait_for_head(deadline))
    }

    fn now(&self) -> Instant {
        // The runtime's clock, which the sleeps run on.
        tokio::time::Instant::now().into_std()
    }
}

impl HeadTimer {
    /// The timer of a connection just opened.
    fn new(header_read_timeout: Duration, idle_timeout: Duration, read: Arc<AtomicU64>) -> Self {
        Self {
            header_read_timeout,
            idle_timeout,
            read,
            deadline: Arc::new(std::sync::Mutex::new(Box::pin(tokio::time::sleep(
                idle_timeout,
            )))),
        }
    }

    /// The wait hyper starts for a request head, which it wants over by `deadline`.
    fn wait_for_head(&self, deadline: Instant) -> HeadSleep {
        let read = self.read.load(Ordering::Relaxed);
        // Nothing read yet means the connection's first request, timed from the opening.
        let (deadline, idle_since) = if read == 0 {
            (tokio::time::Instant::from_std(deadline), None)
        } else {
            (tokio::time::Instant::now() + self.idle_timeout, Some(read))
        };
        lock(&self.deadline).as_mut().reset(deadline);
        HeadSleep {
            deadline: Arc::clone(&self.deadline),
            idle_since,
            read: Arc::clone(&self.read),
            header_read_timeout: self.header_read_timeout,
        }
    }
}

/// The shared timer; a panic while it was held left nothing half-done in it.
fn lock(deadline: &SharedDeadline) -> std::sync::MutexGuard<'_, Pin<Box<tokio::time::Sleep>>> {
    deadline
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A [`HeadTimer`] deadline.
struct HeadSleep {
    deadline: SharedDeadline,
    /// While waiting between requests: the byte count when the wait began.
    idle_since: Option<u64>,
    read: Arc<AtomicU64>,
    header_read_timeout: Duration,
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut sleep = lock(&this.deadline);
        // hyper polls its timer right after every read that leaves the head incomplete,
        // so this notices the first byte of the next request as it arrives.
        if let Some(before) = this.idle_since
            && this.read.load(Ordering::Relaxed) != before
        {
            this.idle_since = None;
            let deadline = tokio::time::Instant::now() + this.header_read_timeout;
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut().poll(cx)
    }
}

impl Sleep for HeadSleep {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const HEADER: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(75);

    fn timer(read: u64) -> HeadTimer {
        HeadTimer::new(HEADER, IDLE, Arc::new(AtomicU64::new(read)))
    }

    /// What hyper does when it starts waiting for a request head.
    fn wait(timer: &HeadTimer) -> HeadSleep {
        timer.wait_for_head(timer.now() + HEADER)
    }

    /// Polls `sleep` once (as hyper does after each read) and says how far off its
    /// deadline is.
    fn poll_left(sleep: &mut HeadSleep) -> Duration {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(Pin::new(&mut *sleep).poll(&mut cx).is_pending());
        deadline_of(sleep).saturating_duration_since(tokio::time::Instant::now())
    }

    fn deadline_of(sleep: &HeadSleep) -> tokio::time::Instant {
        lock(&sleep.deadline).deadline()
    }

    fn about(left: Duration, expected: Duration) -> bool {
        left <= expected && left + Duration::from_secs(2) > expected
    }

    #[tokio::test]
    async fn a_new_connection_gets_the_header_timeout_from_its_opening() {
        let timer = timer(0);
        let mut sleep = wait(&timer);
        assert!(about(poll_left(&mut sleep), HEADER));
        // Bytes of the first request do not extend it: a trickled head is cut off.
        let deadline = deadline_of(&sleep);
        timer.read.fetch_add(3, Ordering::Relaxed);
        poll_left(&mut sleep);
        assert_eq!(deadline_of(&sleep), deadline);
    }

    #[tokio::test]
    async fn a_kept_alive_connection_waits_the_idle_timeout() {
        let timer = timer(120);
        let mut sleep = wait(&timer);
        assert!(about(poll_left(&mut sleep), IDLE));
        assert!(
            about(poll_left(&mut sleep), IDLE),
            "polling alone changes nothing"
        );
    }

    #[tokio::test]
    async fn the_next_request_gets_the_header_timeout_from_its_first_byte() {
        let timer = timer(120);
        let mut sleep = wait(&timer);
        timer.read.fetch_add(5, Ordering::Relaxed);
        assert!(about(poll_left(&mut sleep), HEADER));
        let deadline = deadline_of(&sleep);
        timer.read.fetch_add(5, Ordering::Relaxed);
        poll_left(&mut sleep);
        assert_eq!(deadline_of(&sleep), deadline, "more bytes do not extend it");
    }

    #[tokio::test]
    async fn each_wait_on_a_connection_moves_its_one_timer_where_it_belongs() {
        let timer = timer(0);
        let mut first = wait(&timer);
        assert!(about(poll_left(&mut first), HEADER));
        drop(first);
        // The first request was read and answered: idle until the next one begins...
        timer.read.fetch_add(100, Ordering::Relaxed);
        let mut second = wait(&timer);
        assert!(about(poll_left(&mut second), IDLE));
        // ...which moves the deadline earlier...
        timer.read.fetch_add(5, Ordering::Relaxed);
        assert!(about(poll_left(&mut second), HEADER));
        drop(second);
        // ...and the wait after it later again.
        let mut third = wait(&timer);
        assert!(about(poll_left(&mut third), IDLE));
    }

    #[tokio::test]
    async fn a_moved_timer_fires_at_its_last_deadline_only() {
        let idle = Duration::from_secs(1);
        let timer = HeadTimer::new(HEADER, idle, Arc::new(AtomicU64::new(100)));
        let mut first = wait(&timer);
        poll_left(&mut first);
        drop(first);
        tokio::time::sleep(idle / 2).await;
        let started = tokio::time::Instant::now();
        let mut next = wait(&timer);
        poll_left(&mut next);
        // Past the first wait's deadline, the second one is still waiting.
        tokio::time::sleep(idle * 6 / 10).await;
        poll_left(&mut next);
        tokio::time::timeout(idle * 3, next).await.unwrap();
        assert!(started.elapsed() >= idle);
    }

    #[test]
    fn the_cap_leaves_room_for_the_database_and_the_rest() {
        assert_eq!(connection_cap(None, 10), MAX_CONNECTIONS);
        assert_eq!(connection_cap(Some(1_048_576), 10), MAX_CONNECTIONS);
        // 1024 - 128 - 3 * (10 + 2)
        assert_eq!(connection_cap(Some(1024), 10), 860);
        assert_eq!(connection_cap(Some(64), 10), MIN_CONNECTIONS);
    }

    #[test]
    fn test_overrides_replace_only_the_named_figures() {
        let shipped = ConnectionLimits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_connections: 100,
        };
        let shortened = shipped
            .with_overrides("header_read_ms=1500, max_connections=4")
            .unwrap();
        assert_eq!(shortened.header_read_timeout, Duration::from_millis(1500));
        assert_eq!(shortened.idle_timeout, IDLE_TIMEOUT);
        assert_eq!(shortened.max_connections, 4);
        assert!(shipped.with_overrides("idle=3").is_err());
        assert!(shipped.with_overrides("idle_ms=soon").is_err());
    }
}
