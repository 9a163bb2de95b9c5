//! Nagle's algorithm is off on both ends of every gRPC connection the kit makes: with it on, a
//! unary reply's last frame waits for the peer's delayed ACK and a call stalls ~40 ms.
//!
//! The sockets are read back from this process's own file descriptors, so the test sees what the
//! kernel was told, not what a builder was configured with.

use std::{net::SocketAddr, os::fd::BorrowedFd, time::Duration};

use crm_kit::{
    auth::Authenticator,
    client::TracedChannel,
    config::AuthConfig,
    server::{ServeOptions, serve},
    shutdown,
};
use socket2::SockRef;
use tokio::{io::AsyncReadExt, net::TcpListener};
use tonic::service::Routes;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// `TCP_NODELAY` of the socket in this process whose local and peer addresses are these.
fn nodelay(local: SocketAddr, peer: SocketAddr) -> bool {
    let fds = std::fs::read_dir("/proc/self/fd").expect("procfs lists this process's descriptors");
    for entry in fds.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // SAFETY: the descriptor is only borrowed for the getsockopt calls below, while the
        // connection it belongs to is held open by the test.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = SockRef::from(&fd);
        let addresses = (socket.local_addr(), socket.peer_addr());
        if let (Ok(l), Ok(p)) = addresses
            && l.as_socket() == Some(local)
            && p.as_socket() == Some(peer)
        {
            return socket.tcp_nodelay().expect("a TCP socket has TCP_NODELAY");
        }
    }
    panic!("no socket {local} -> {peer} in this process");
}

#[tokio::test]
async fn the_server_turns_nagle_off_on_every_accepted_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let options = ServeOptions {
        service_names: vec![],
        authenticator: Authenticator::new(
            "a-test-secret-of-at-least-32-bytes!",
            &AuthConfig::default(),
        ),
        concurrency_limit: 4,
        request_timeout: Duration::from_secs(5),
        ready: tokio::sync::watch::channel(true).1,
    };
    let serving = tokio::spawn(serve(listener, Routes::default(), options, shutdown));

    // A plain client socket (Nagle on), so only the server's side can make the accepted one nodelay.
    let stream = tokio::net::TcpStream::connect(server).await.unwrap();
    let client = stream.local_addr().unwrap();
    let channel = tonic::transport::Endpoint::from_static("http://server")
        .connect_with_connector(tower::service_fn({
            let mut stream = Some(stream);
            move |_| {
                let stream = stream.take().expect("one connection");
                async move { Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream)) }
            }
        }))
        .await
        .unwrap();
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .expect("the server answers health checks");

    assert!(
        nodelay(server, client),
        "the accepted connection has TCP_NODELAY set"
    );
    trigger.trigger();
    serving.await.unwrap().unwrap();
}

#[tokio::test]
async fn peer_channels_turn_nagle_off() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let channel = TracedChannel::lazy(&format!("http://{server}")).unwrap();
    let call = tokio::spawn(async move {
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
    });
    // Nobody answers the call. Once the client's HTTP/2 preface arrives, its connector has
    // finished setting the socket up.
    let (mut accepted, client) = listener.accept().await.unwrap();
    let mut preface = [0; 24];
    accepted.read_exact(&mut preface).await.unwrap();
    assert_eq!(&preface[..3], b"PRI", "an HTTP/2 connection");
    assert!(
        nodelay(client, server),
        "the channel's connection has TCP_NODELAY set"
    );
    call.abort();
}
